import { app } from 'electron'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'

/**
 * Where the renderer lives: electron-vite's dev server under `npm run dev`, the built
 * out/renderer/index.html otherwise. The window loads it and IPC trusts only it.
 */
export function rendererUrl(): string {
  const devServer = process.env['ELECTRON_RENDERER_URL']
  // A packaged app never takes its page from the environment.
  if (devServer && !app.isPackaged) return devServer
  return pathToFileURL(join(import.meta.dirname, '../renderer/index.html')).href
}

/** The built preload script: one CommonJS file, because sandboxed preloads cannot load modules. */
export function preloadPath(): string {
  return join(import.meta.dirname, '../preload/index.cjs')
}
