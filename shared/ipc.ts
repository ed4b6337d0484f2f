import { z } from 'zod'
import type { ErrorCode } from './errors.js'

/**
 * The IPC contract: every channel the renderer may call, with its input and output schema.
 * Channels are `domain:verb`; the preload exposes them as `window.gtm.<domain>.<verb>()`.
 * Main parses every input with `input` and every result with `output` before it leaves.
 */
export const ipc = {
  'app:info': {
    input: z.void(),
    output: z.object({ name: z.string().min(1), version: z.string().min(1) }),
  },
} as const

export type IpcContract = typeof ipc
export type IpcChannel = keyof IpcContract
export type IpcInput<C extends IpcChannel> = z.input<IpcContract[C]['input']>
export type IpcOutput<C extends IpcChannel> = z.output<IpcContract[C]['output']>
/** The input after parsing, as a handler receives it (defaults applied, strings coerced). */
export type IpcParsedInput<C extends IpcChannel> = z.output<IpcContract[C]['input']>

/** Every channel name, for code that walks the contract (preload, handler registration). */
export const ipcChannels = Object.keys(ipc) as IpcChannel[]

/** Codes only the IPC layer produces, on top of the application's own. */
export type IpcErrorCode = ErrorCode | 'ipc_input_invalid' | 'ipc_sender_untrusted'

/** What a failed call carries to the renderer: a code to switch on and a sentence to show. */
export type IpcError = { code: IpcErrorCode; message: string }

/**
 * What every channel resolves to. Errors thrown through `invoke` lose their class and fields,
 * so failures travel as data instead.
 */
export type IpcResult<T> = { ok: true; data: T } | { ok: false; error: IpcError }

/** The handler main registers for one channel: validated input in, output (or a promise) out. */
export type IpcHandler<C extends IpcChannel> = (
  input: IpcParsedInput<C>,
) => IpcOutput<C> | Promise<IpcOutput<C>>

/** One handler per channel; a missing channel fails to compile. */
export type IpcHandlers = { [C in IpcChannel]: IpcHandler<C> }
