import { app, BrowserWindow, shell } from 'electron'
import { handleAll } from './ipc/handle.js'
import { createHandlers } from './ipc/handlers.js'
import { preloadPath, rendererUrl } from './renderer-url.js'

const productName = 'GTM Clarity Connect'

/** Opens the main window with the renderer locked down: isolated, sandboxed, no Node. */
function createMainWindow(): BrowserWindow {
  const window = new BrowserWindow({
    title: productName,
    width: 1200,
    height: 800,
    show: false,
    webPreferences: {
      preload: preloadPath(),
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      webSecurity: true,
    },
  })
  window.once('ready-to-show', () => window.show())

  // The renderer is one page: new windows open in the browser, navigation elsewhere is refused.
  window.webContents.setWindowOpenHandler(({ url }) => {
    if (url.startsWith('https://')) {
      shell.openExternal(url).catch((err: unknown) => console.error('Could not open link:', err))
    }
    return { action: 'deny' }
  })
  window.webContents.on('will-navigate', (event, url) => {
    if (url !== window.webContents.getURL()) event.preventDefault()
  })

  window.loadURL(rendererUrl()).catch((err: unknown) => {
    console.error('The window could not load the app:', err)
  })
  return window
}

async function main(): Promise<void> {
  app.setName(productName)
  // One instance per user: a second launch focuses the first window instead.
  if (!app.requestSingleInstanceLock()) {
    app.quit()
    return
  }
  await app.whenReady()

  handleAll(createHandlers({ app: { name: app.getName(), version: app.getVersion() } }))
  let mainWindow = createMainWindow()

  app.on('second-instance', () => {
    if (mainWindow.isMinimized()) mainWindow.restore()
    mainWindow.focus()
  })
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) mainWindow = createMainWindow()
  })
  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit()
  })
}

main().catch((err: unknown) => {
  console.error('GTM Clarity Connect failed to start:', err)
  app.exit(1)
})
