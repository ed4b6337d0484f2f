import { ipcChannels } from '../../shared/ipc.js'
import type { IpcChannel, IpcInput, IpcOutput, IpcResult } from '../../shared/ipc.js'

/** Sends one call to main. The preload passes ipcRenderer.invoke; nothing else sees it. */
export type Invoke = (channel: IpcChannel, input: unknown) => Promise<unknown>

type DomainOf<C> = C extends `${infer D}:${string}` ? D : never

type CallFor<C extends IpcChannel> =
  IpcInput<C> extends void
    ? () => Promise<IpcResult<IpcOutput<C>>>
    : (input: IpcInput<C>) => Promise<IpcResult<IpcOutput<C>>>

/**
 * window.gtm: one function per contract channel, grouped by domain, so `app:info` is
 * `gtm.app.info()`. Derived from shared/ipc.ts; never written by hand.
 */
export type GtmApi = {
  [D in DomainOf<IpcChannel>]: {
    [C in IpcChannel as C extends `${D}:${infer V}` ? V : never]: CallFor<C>
  }
}

/** Builds window.gtm from the contract's keys. */
export function createGtmApi(invoke: Invoke): GtmApi {
  const api: Record<string, Record<string, (input?: unknown) => Promise<unknown>>> = {}
  for (const channel of ipcChannels) {
    const [domain = '', verb = ''] = channel.split(':')
    const group = (api[domain] ??= {})
    group[verb] = (input?: unknown) => invoke(channel, input)
  }
  // The loop above builds exactly the shape GtmApi describes, which TypeScript cannot follow.
  return api as GtmApi
}
