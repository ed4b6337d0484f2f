import { contextBridge, ipcRenderer } from 'electron'
import { createGtmApi } from './api.js'

/** The api the renderer sees as window.gtm. ipcRenderer itself is never exposed. */
export const api = createGtmApi((channel, input) => ipcRenderer.invoke(channel, input))

export type { GtmApi } from './api.js'

contextBridge.exposeInMainWorld('gtm', api)
