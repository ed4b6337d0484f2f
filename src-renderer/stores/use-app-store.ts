import { create } from 'zustand'
import type { IpcOutput } from '../../shared/ipc.js'
import { call, messageOf, onEvent } from '../lib/gtm.js'

type AppInfo = IpcOutput<'app:info'>
type AgentStatus = IpcOutput<'agent:status'>

type AppState = {
  info: AppInfo | null
  agent: AgentStatus | null
  error: string | null
  /** Reads the app's name and version and the agent's state, then follows the agent's events. */
  start: () => () => void
  restartAgent: () => Promise<void>
}

/** App-wide facts from main: name, version, and how the agent process is doing. */
export const useAppStore = create<AppState>()((set) => ({
  info: null,
  agent: null,
  error: null,
  start: () => {
    call('app:info').then(
      (info) => set({ info }),
      (err: unknown) => set({ error: messageOf(err) }),
    )
    call('agent:status').then(
      (agent) => set({ agent }),
      (err: unknown) => set({ error: messageOf(err) }),
    )
    return onEvent('agent:status', (agent) => set({ agent }))
  },
  restartAgent: async () => {
    const agent = await call('agent:restart')
    set({ agent })
  },
}))
