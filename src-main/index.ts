import path from 'node:path'
import { app, BrowserWindow, clipboard, shell } from 'electron'
import { agentEnvironment, DATABASE_PASSWORD_NAME } from './agent/environment.js'
import { AgentSupervisor } from './agent/supervisor.js'
import { utilityAgent } from './agent/utility.js'
import { checkExternalUrl } from './external.js'
import { handleAll, sendEvent } from './ipc/handle.js'
import { createHandlers } from './ipc/handlers.js'
import { createMainLog, errorFields } from './log.js'
import { agentEntryPath, packagedTemporalCliPath } from './paths.js'
import { preloadPath, rendererUrl } from './renderer-url.js'
import { provideEncryptionKey, type EncryptionKeySource } from './secrets/encryption-key.js'
import { osKeychain } from './secrets/keychain.js'
import { electronStoreSettings } from './settings/electron-store.js'
import { SettingsStore } from './settings/store.js'

const productName = 'GTM Clarity Connect'

async function main(): Promise<void> {
  app.setName(productName)
  // One instance per user: a second launch focuses the first window instead.
  if (!app.requestSingleInstanceLock()) {
    app.quit()
    return
  }
  await app.whenReady()
  const log = createMainLog({ dir: app.getPath('logs') })
  const settings = new SettingsStore(electronStoreSettings())
  const keychain = osKeychain(productName)
  let keySource: EncryptionKeySource | null = null
  let mainWindow: BrowserWindow | undefined

  const emit = (event: Parameters<typeof sendEvent>[1], data: unknown): void => {
    if (mainWindow) sendEvent(mainWindow.webContents, event, data, log)
  }

  /** The agent's environment, built afresh at every start (settings may have changed). */
  const agentEnv = async (): Promise<Record<string, string>> => {
    const { key, source } = await provideEncryptionKey(keychain)
    keySource = source
    const current = settings.get()
    const password =
      current.database.mode === 'external' ? await keychain.get(DATABASE_PASSWORD_NAME) : null
    return agentEnvironment({
      settings: current,
      encryptionKey: key,
      databasePassword: password,
      defaultDataFolder: path.join(app.getPath('userData'), 'agent'),
      ...(app.isPackaged
        ? { temporalCliPath: packagedTemporalCliPath(process.resourcesPath, process.platform) }
        : {}),
    })
  }

  let env: Record<string, string> | undefined
  let startProblem: string | undefined
  try {
    env = await agentEnv()
  } catch (err) {
    startProblem = err instanceof Error ? err.message : String(err)
    log('error', 'the agent cannot be started', { error: startProblem })
  }

  const agent = new AgentSupervisor({
    spawn: () => {
      if (!env) throw new Error(startProblem ?? 'The agent has no environment.')
      return utilityAgent({
        entry: agentEntryPath(import.meta.dirname),
        env,
        onStderr: (line) => log.agentLine(line),
      })()
    },
    onEvent: (event, data) => emit(event, data),
    onStatus: (status) => emit('agent:status', status),
    log: (level, message, fields) => log(level, message, fields),
  })

  const handlers = createHandlers({
    app: { name: app.getName(), version: app.getVersion() },
    agent,
    settings,
    keychain: async () => ({ ...(await keychain.probe()), encryptionKeySource: keySource }),
    openSignInPage: (url) => openInBrowser(url),
    copyText: (text) => clipboard.writeText(text),
    setDatabasePassword: async (password) => {
      if (password) await keychain.set(DATABASE_PASSWORD_NAME, password)
      else await keychain.delete(DATABASE_PASSWORD_NAME)
    },
    onAgentSettingsChanged: () => {
      void agentEnv()
        .then((next) => {
          env = next
          agent.restart()
        })
        .catch((err: unknown) => log('error', 'the agent could not be restarted', errorFields(err)))
    },
    log,
  })
  handleAll(handlers, log)
  agent.start()
  mainWindow = createMainWindow(settings, log)

  app.on('second-instance', () => {
    if (!mainWindow) return
    if (mainWindow.isMinimized()) mainWindow.restore()
    mainWindow.focus()
  })
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) mainWindow = createMainWindow(settings, log)
  })
  app.on('window-all-closed', () => {
    if (process.platform !== 'darwin') app.quit()
  })
  // Quitting stops the agent gracefully: a sync finishes its page (committed) and resumes later.
  let stopped = false
  app.on('before-quit', (event) => {
    if (stopped) return
    event.preventDefault()
    void agent.stop().finally(() => {
      stopped = true
      app.quit()
    })
  })
}

/** Opens the main window with the renderer locked down: isolated, sandboxed, no Node. */
function createMainWindow(
  settings: SettingsStore,
  log: ReturnType<typeof createMainLog>,
): BrowserWindow {
  const bounds = settings.get().windowBounds
  const window = new BrowserWindow({
    title: productName,
    width: bounds?.width ?? 1200,
    height: bounds?.height ?? 800,
    ...(bounds?.x !== undefined && bounds.y !== undefined ? { x: bounds.x, y: bounds.y } : {}),
    show: false,
    webPreferences: {
      // Reviewed: sandboxed, isolated, exposes only window.gtm (typed calls, no ipcRenderer).
      preload: preloadPath(), // eng-disable PRELOAD_JS_CHECK
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      webSecurity: true,
      allowRunningInsecureContent: false,
      experimentalFeatures: false,
      navigateOnDragDrop: false,
      spellcheck: false,
      // A middle click would open a link in a new window; links open in the browser instead.
      disableBlinkFeatures: 'Auxclick',
    },
  })
  window.once('ready-to-show', () => window.show())
  window.on('close', () => {
    const { x, y, width, height } = window.getBounds()
    try {
      settings.update({ windowBounds: { x, y, width, height } })
    } catch (err) {
      log('warn', 'could not keep the window size', errorFields(err))
    }
  })

  // The renderer is one page: no new windows, no navigation away, no permission prompts.
  window.webContents.setWindowOpenHandler(({ url }) => {
    openInBrowser(url).catch((err: unknown) =>
      log('warn', 'a link was not opened', errorFields(err)),
    )
    return { action: 'deny' }
  })
  window.webContents.on('will-navigate', (event) => event.preventDefault())
  window.webContents.on('will-redirect', (event) => event.preventDefault())
  window.webContents.on('will-attach-webview', (event) => event.preventDefault())
  window.webContents.session.setPermissionRequestHandler((_contents, _permission, callback) =>
    callback(false),
  )

  window.loadURL(rendererUrl()).catch((err: unknown) => {
    log('error', 'the window could not load the app', errorFields(err))
  })
  return window
}

/**
 * Opens a link in the system browser: only https URLs without credentials (checkExternalUrl),
 * which the app built itself (a vendor's sign-in page, its docs).
 */
async function openInBrowser(url: string): Promise<void> {
  const checked = checkExternalUrl(url)
  if (!checked.ok) throw new Error(`The link was not opened: ${checked.reason}.`)
  // Reviewed: the URL passed the check above.
  await shell.openExternal(checked.url) // eng-disable OPEN_EXTERNAL_JS_CHECK
}

main().catch((err: unknown) => {
  console.error('GTM Clarity Connect failed to start:', err)
  app.exit(1)
})
