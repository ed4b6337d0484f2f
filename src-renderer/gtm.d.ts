import type { GtmApi } from '../src-main/preload/api.js'

declare global {
  interface Window {
    /** The preload's api: one function per channel in shared/ipc.ts. */
    readonly gtm: GtmApi
  }
}

export {}
