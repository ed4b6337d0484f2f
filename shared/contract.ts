import type { z } from 'zod'
import { AppError, VendorError, retryableCodes } from './errors.js'
import type { ErrorCode } from './errors.js'

/**
 * The shape both hops share (renderer → main in shared/ipc.ts, main → agent in shared/rpc.ts):
 * every call has an input and an output schema, and says whether it changes anything. The one
 * dispatch below parses the input, runs the handler, parses the output and wraps the answer, so
 * the two hops behave alike and are tested alike.
 */
export type CallSpec = {
  input: z.ZodType
  output: z.ZodType
  /**
   * 'mutation' calls change a tenant's stored state and write one audit row each; 'query' calls
   * change nothing; 'local' calls change only this machine's app (settings, the agent process).
   */
  kind: 'query' | 'mutation' | 'local'
}

export type Contract = Record<string, CallSpec>

/** Codes only the two hops produce, on top of the application's own. */
export type TransportErrorCode =
  | 'ipc_input_invalid'
  | 'ipc_sender_untrusted'
  | 'rpc_timeout'
  | 'rpc_cancelled'
  | 'agent_unavailable'
  | 'agent_stopped'
  | 'signin_not_running'

export type CallErrorCode = ErrorCode | TransportErrorCode

/**
 * What a failed call carries: a code to switch on, a sentence that says what to do, and whether
 * the same call may succeed if simply tried again (a timeout, an agent restarting, a vendor 503).
 */
export type CallError = { code: CallErrorCode; message: string; retryable: boolean }

/**
 * What every call resolves to. Errors thrown across a process boundary lose their class and
 * fields, so failures travel as data instead.
 */
export type CallResult<T> = { ok: true; data: T } | { ok: false; error: CallError }

export type CallName<K extends Contract> = keyof K & string
export type CallInput<K extends Contract, N extends CallName<K>> = z.input<K[N]['input']>
/** The input after parsing, as a handler receives it (defaults applied). */
export type CallParsedInput<K extends Contract, N extends CallName<K>> = z.output<K[N]['input']>
export type CallOutput<K extends Contract, N extends CallName<K>> = z.output<K[N]['output']>

/**
 * What a handler gets besides its input: a signal that fires when the caller gives up (a
 * timeout, Cancel, the app quitting), and a way to push events about this call (progress).
 */
export type CallContext = {
  signal: AbortSignal
  emit: (event: string, data: unknown) => void
}

export type CallHandler<K extends Contract, N extends CallName<K>> = (
  input: CallParsedInput<K, N>,
  context: CallContext,
) => CallOutput<K, N> | Promise<CallOutput<K, N>>

/** One handler per call; a missing one fails to compile. */
export type CallHandlers<K extends Contract> = { [N in CallName<K>]: CallHandler<K, N> }

export type DispatchOptions = {
  /** Told about failures the caller only sees as "internal", so they reach the log. */
  reportInternal?: (message: string, err: unknown) => void
  signal?: AbortSignal
  emit?: CallContext['emit']
}

/**
 * Runs one call's handler on a raw payload: parses the input with the contract's schema, runs
 * the handler, parses its result with the output schema (which also strips fields the contract
 * does not list, so nothing extra, a token or a raw row, leaves by accident) and wraps either in
 * a CallResult. Never throws.
 */
export async function dispatch<K extends Contract, N extends CallName<K>>(
  contract: K,
  name: N,
  rawInput: unknown,
  handler: CallHandler<K, N>,
  options: DispatchOptions = {},
): Promise<CallResult<CallOutput<K, N>>> {
  const { reportInternal = () => {} } = options
  const spec = contract[name]
  if (!spec) {
    return failure('ipc_input_invalid', `There is no call named "${name}".`)
  }
  const input = spec.input.safeParse(rawInput)
  if (!input.success) {
    const issue = input.error.issues[0]
    const where = issue && issue.path.length > 0 ? ` at "${issue.path.join('.')}"` : ''
    return failure(
      'ipc_input_invalid',
      `The request to ${name} was not valid${where}: ${issue?.message ?? 'unknown problem'}.`,
    )
  }
  try {
    const context: CallContext = {
      signal: options.signal ?? new AbortController().signal,
      emit: options.emit ?? (() => undefined),
    }
    const result = await handler(input.data as CallParsedInput<K, N>, context)
    const output = spec.output.safeParse(result)
    if (!output.success) {
      reportInternal(`${name} returned a result that does not match the contract`, output.error)
      return failure('internal', `${name} returned a malformed result.`)
    }
    return { ok: true, data: output.data as CallOutput<K, N> }
  } catch (err) {
    if (!(err instanceof AppError) && !(err instanceof CallFailure)) {
      reportInternal(`${name} failed`, err)
    }
    return { ok: false, error: toCallError(err) }
  }
}

/** Whether a call that failed with `code` may succeed when simply tried again. */
export function isRetryable(code: CallErrorCode): boolean {
  switch (code) {
    case 'rpc_timeout':
    case 'agent_unavailable':
      return true
    case 'ipc_input_invalid':
    case 'ipc_sender_untrusted':
    case 'rpc_cancelled':
    case 'agent_stopped':
    case 'signin_not_running':
      return false
    default:
      return retryableCodes[code]
  }
}

/**
 * A failure that already is a CallError (an agent's answer main passes on, a refusal of main's
 * own): thrown inside a handler, dispatch returns it unchanged.
 */
export class CallFailure extends Error {
  readonly error: CallError

  constructor(error: CallError) {
    super(error.message)
    this.name = 'CallFailure'
    this.error = error
  }

  static of(code: CallErrorCode, message: string): CallFailure {
    return new CallFailure({ code, message, retryable: isRetryable(code) })
  }
}

/** An error as a caller may see it: an AppError keeps its code and message, anything else is "internal". */
export function toCallError(err: unknown): CallError {
  if (err instanceof CallFailure) return err.error
  if (err instanceof VendorError) {
    return { code: err.code, message: err.userMessage, retryable: err.retryable }
  }
  if (err instanceof AppError) {
    return { code: err.code, message: err.userMessage, retryable: isRetryable(err.code) }
  }
  // Unknown errors may carry query text or vendor bodies; their message is not forwarded.
  return {
    code: 'internal',
    message: 'Something went wrong. Details are in the app log.',
    retryable: false,
  }
}

/** A failed CallResult with the usual retryable flag for its code. */
export function failure(code: CallErrorCode, message: string): { ok: false; error: CallError } {
  return { ok: false, error: { code, message, retryable: isRetryable(code) } }
}

/** The names of a contract's calls, for code that walks it (preload, registration, tests). */
export function callNames<K extends Contract>(contract: K): Array<CallName<K>> {
  return Object.keys(contract)
}
