import { z } from 'zod'
import type {
  CallError,
  CallInput,
  CallHandler,
  CallHandlers,
  CallName,
  CallOutput,
  CallParsedInput,
  CallResult,
  Contract,
} from './contract.js'
import { agentEvents, agentRpc } from './rpc.js'
import { connectorStatusSchema } from './schemas.js'
import { settingsPatchSchema, settingsSchema } from './settings.js'

/**
 * The renderer's contract: every channel it may call through `window.gtm`, with its input and
 * output schema. Channels are `domain:verb`; the preload exposes them as
 * `window.gtm.<domain>.<verb>()`. Main parses every input and every result with these schemas.
 *
 * Most channels are the agent's own RPC methods (shared/rpc.ts), forwarded unchanged; the rest
 * are main's: the app, its settings, the agent process, the keychain and the browser sign-in.
 * kind 'local' changes only this machine's app (its settings, its agent process): main logs it;
 * tenant data never changes through such a channel.
 */

export const agentStatusSchema = z.object({
  /**
   * starting → ready; a crash → restarting (with backoff) → ready; too many crashes in a short
   * time → crashed (no more restarts until "Restart agent"); quitting → stopped.
   */
  state: z.enum(['starting', 'ready', 'restarting', 'crashed', 'stopped']),
  pid: z.number().int().nullable(),
  /** Restarts after a crash since the app started. */
  restarts: z.number().int().nonnegative(),
  /** When the next start is due, while restarting. */
  nextStartAt: z.string().nullable(),
  /** What the last crash or start-up failure said, in words an admin can act on. */
  lastError: z.string().nullable(),
})

export const keychainStatusSchema = z.object({
  /** The OS store in use: macOS Keychain, Windows Credential Manager, Secret Service … */
  backend: z.string(),
  available: z.boolean(),
  /** Whether what is kept survives a restart of the machine. */
  persistent: z.boolean(),
  /** What is wrong and what to do, when it is not available. */
  problem: z.string().nullable(),
  /** Where the connector encryption key came from, once the agent was started. */
  encryptionKeySource: z.enum(['environment', 'keychain', 'generated']).nullable(),
})

const mainChannels = {
  'app:info': {
    kind: 'query',
    input: z.void(),
    output: z.object({ name: z.string().min(1), version: z.string().min(1) }),
  },
  'agent:status': { kind: 'query', input: z.void(), output: agentStatusSchema },
  /** Puts text on the system clipboard (the diagnostics report); the renderer has no access. */
  'app:copyText': {
    kind: 'local',
    input: z.object({ text: z.string().max(1_000_000) }),
    output: z.object({ copied: z.literal(true) }),
  },
  'agent:restart': { kind: 'local', input: z.void(), output: agentStatusSchema },
  'settings:get': { kind: 'query', input: z.void(), output: settingsSchema },
  'settings:set': { kind: 'local', input: settingsPatchSchema, output: settingsSchema },
  'keychain:status': { kind: 'query', input: z.void(), output: keychainStatusSchema },
  /**
   * Keeps the shared database's password in the OS keychain (never in the settings file) and
   * restarts the agent with it; an empty password removes it.
   */
  'settings:setDatabasePassword': {
    kind: 'local',
    input: z.object({ password: z.string().max(1024) }),
    output: z.object({ stored: z.boolean() }),
  },
  /**
   * Starts the browser sign-in of a connector: the agent listens on the redirect port from the
   * settings, main opens the vendor's page in the system browser, and the call resolves when the
   * connection is stored (or the flow failed, timed out or was cancelled). `signin:state` events
   * tell the screen where it is. One flow at a time.
   */
  'signin:begin': {
    kind: 'mutation',
    input: z.object({
      tenantId: z.string().min(1).max(64),
      connectorType: z.string().min(1).max(64),
      config: z.record(z.string(), z.unknown()),
    }),
    output: z.object({ connectionId: z.string(), status: connectorStatusSchema }),
  },
  /** Stops a sync this app started, after the page in hand (what is committed stays). */
  'sync:cancel': {
    kind: 'local',
    input: z.object({
      tenantId: z.string().min(1).max(64),
      connectorType: z.string().min(1).max(64),
    }),
    output: z.object({ cancelled: z.boolean() }),
  },
  'signin:cancel': {
    kind: 'local',
    input: z.void(),
    output: z.object({ cancelled: z.boolean() }),
  },
} as const

/** The agent's methods the renderer calls as they are; `signin:run` is reached through `signin:begin`. */
const { 'signin:run': _signInRun, ...forwarded } = agentRpc

export const ipc = { ...mainChannels, ...forwarded } as const satisfies Contract

export type IpcContract = typeof ipc
export type IpcChannel = CallName<IpcContract>
export type IpcInput<C extends IpcChannel> = CallInput<IpcContract, C>
export type IpcOutput<C extends IpcChannel> = CallOutput<IpcContract, C>
export type IpcParsedInput<C extends IpcChannel> = CallParsedInput<IpcContract, C>
export type IpcHandler<C extends IpcChannel> = CallHandler<IpcContract, C>
export type IpcHandlers = CallHandlers<IpcContract>
export type IpcError = CallError
export type IpcResult<T> = CallResult<T>

/** Every channel name, for code that walks the contract (preload, handler registration). */
export const ipcChannels = Object.keys(ipc) as IpcChannel[]
/** The channels main answers itself; every other channel goes to the agent as is. */
export const mainChannelNames = Object.keys(mainChannels) as Array<keyof typeof mainChannels>
export type ForwardedChannel = Exclude<IpcChannel, keyof typeof mainChannels>
export const forwardedChannels = Object.keys(forwarded) as ForwardedChannel[]

/** Events main pushes to the renderer (`window.gtm.on(event, listener)`). */
export const ipcEvents = { ...agentEvents, 'agent:status': agentStatusSchema } as const
export type IpcEventName = keyof typeof ipcEvents
export type IpcEvent<E extends IpcEventName> = z.output<(typeof ipcEvents)[E]>
export const ipcEventNames = Object.keys(ipcEvents) as IpcEventName[]
