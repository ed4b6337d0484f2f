import type { IpcHandlers } from '../../shared/ipc.js'

/** What the app:* handlers need to know, passed in so tests can run them under plain Node. */
export type AppInfo = { name: string; version: string }

/** Handlers for the app:* channels. */
export function createAppHandlers(info: AppInfo): Pick<IpcHandlers, 'app:info'> {
  return {
    'app:info': () => ({ name: info.name, version: info.version }),
  }
}
