import type { IpcHandlers } from '../../shared/ipc.js'
import { createAppHandlers } from './app.js'
import type { AppInfo } from './app.js'

/** Everything the handlers depend on. Grows as domains (connectors, runs) arrive. */
export type HandlerDeps = { app: AppInfo }

/**
 * Every channel's handler, as plain functions. Main registers them with ipcMain; the e2e
 * harness binds the same object to window.gtm in Chromium.
 */
export function createHandlers(deps: HandlerDeps): IpcHandlers {
  return {
    ...createAppHandlers(deps.app),
  } satisfies IpcHandlers
}
