import { ipcChannels, ipcEventNames } from '../../shared/ipc.js'
import type {
  IpcChannel,
  IpcEvent,
  IpcEventName,
  IpcInput,
  IpcOutput,
  IpcResult,
} from '../../shared/ipc.js'

/** Sends one call to main. The preload passes ipcRenderer.invoke; nothing else sees it. */
export type Invoke = (channel: IpcChannel, input: unknown) => Promise<unknown>

/** Listens to main's events; returns what stops listening. */
export type Subscribe = (
  listener: (message: { event: string; data: unknown }) => void,
) => () => void

type DomainOf<C> = C extends `${infer D}:${string}` ? D : never

type CallFor<C extends IpcChannel> =
  IpcInput<C> extends void
    ? () => Promise<IpcResult<IpcOutput<C>>>
    : (input: IpcInput<C>) => Promise<IpcResult<IpcOutput<C>>>

/**
 * window.gtm: one function per contract channel, grouped by domain, so `app:info` is
 * `gtm.app.info()`, and `gtm.on(event, listener)` for main's events (sync progress, agent
 * status, sign-in state). Derived from shared/ipc.ts; never written by hand.
 */
export type GtmApi = {
  [D in DomainOf<IpcChannel>]: {
    [C in IpcChannel as C extends `${D}:${infer V}` ? V : never]: CallFor<C>
  }
} & {
  on<E extends IpcEventName>(event: E, listener: (data: IpcEvent<E>) => void): () => void
}

/** Builds window.gtm from the contract's keys. */
export function createGtmApi(invoke: Invoke, subscribe: Subscribe): GtmApi {
  const api: Record<string, unknown> = {}
  for (const channel of ipcChannels) {
    const [domain = '', verb = ''] = channel.split(':')
    const group = (api[domain] ??= {}) as Record<string, (input?: unknown) => Promise<unknown>>
    group[verb] = (input?: unknown) => invoke(channel, input)
  }
  const known = new Set<string>(ipcEventNames)
  api['on'] = (event: string, listener: (data: unknown) => void) => {
    if (!known.has(event)) throw new Error(`There is no event named "${event}".`)
    return subscribe((message) => {
      if (message.event === event) listener(message.data)
    })
  }
  // The loop above builds exactly the shape GtmApi describes, which TypeScript cannot follow.
  return api as GtmApi
}
