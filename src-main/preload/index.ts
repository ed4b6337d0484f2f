import { contextBridge, ipcRenderer } from 'electron'
import { createGtmApi } from './api.js'

/** The one channel main's events arrive on (src-main/ipc/handle.ts). */
const EVENT_CHANNEL = 'gtm:event'

/** The api the renderer sees as window.gtm. ipcRenderer itself is never exposed. */
export const api = createGtmApi(
  (channel, input) => ipcRenderer.invoke(channel, input),
  (listener) => {
    const handler = (_event: unknown, message: { event: string; data: unknown }): void =>
      listener(message)
    ipcRenderer.on(EVENT_CHANNEL, handler)
    return () => ipcRenderer.off(EVENT_CHANNEL, handler)
  },
)

export type { GtmApi } from './api.js'

contextBridge.exposeInMainWorld('gtm', api)
