import { create } from 'zustand'
import type { IpcError, IpcOutput } from '../../shared/ipc.js'

type AppInfo = IpcOutput<'app:info'>

type AppState = {
  info: AppInfo | null
  error: IpcError | null
  /** Asks main for the app's name and version; safe to call more than once. */
  loadInfo: () => Promise<void>
}

/** App-wide facts from main: name and version for now. */
export const useAppStore = create<AppState>()((set) => ({
  info: null,
  error: null,
  loadInfo: async () => {
    const result = await window.gtm.app.info()
    if (result.ok) set({ info: result.data, error: null })
    else set({ error: result.error })
  },
}))
