import { AppError } from '../../shared/errors.js'
import { ipc } from '../../shared/ipc.js'
import type {
  IpcChannel,
  IpcError,
  IpcHandler,
  IpcOutput,
  IpcParsedInput,
  IpcResult,
} from '../../shared/ipc.js'

export type DispatchOptions = {
  /** Told about failures the renderer only sees as "internal", so they reach the log. */
  reportInternal?: (message: string, err: unknown) => void
}

/**
 * Runs one channel's handler on a raw payload: parses the input with the contract schema,
 * runs the handler, parses its result with the output schema and wraps either in an
 * IpcResult. Plain Node, no Electron, so tests and the e2e harness call it directly.
 */
export async function dispatch<C extends IpcChannel>(
  channel: C,
  rawInput: unknown,
  handler: IpcHandler<C>,
  options: DispatchOptions = {},
): Promise<IpcResult<IpcOutput<C>>> {
  const { reportInternal = () => {} } = options
  const contract = ipc[channel]
  const input = contract.input.safeParse(rawInput)
  if (!input.success) {
    const issue = input.error.issues[0]
    const where = issue && issue.path.length > 0 ? ` at "${issue.path.join('.')}"` : ''
    return failure({
      code: 'ipc_input_invalid',
      message: `The request to ${channel} was not valid${where}: ${issue?.message ?? 'unknown problem'}.`,
    })
  }
  try {
    // TypeScript widens ipc[channel] to every channel's schema; the data is C's input.
    const result = await handler(input.data as IpcParsedInput<C>)
    // Parsing the output also strips fields the contract does not list, so nothing extra
    // (a token, a raw row) reaches the renderer by accident.
    const output = contract.output.safeParse(result)
    if (!output.success) {
      reportInternal(`${channel} returned a result that does not match the contract`, output.error)
      return failure({ code: 'internal', message: `${channel} returned a malformed result.` })
    }
    return { ok: true, data: output.data as IpcOutput<C> }
  } catch (err) {
    if (!(err instanceof AppError)) reportInternal(`${channel} failed`, err)
    return failure(toIpcError(err))
  }
}

/** An error as the renderer may see it: an AppError keeps its code and user message, anything else is "internal". */
export function toIpcError(err: unknown): IpcError {
  if (err instanceof AppError) return { code: err.code, message: err.userMessage }
  // Unknown errors may carry query text or vendor bodies; don't forward their message.
  return { code: 'internal', message: 'Something went wrong. Details are in the app log.' }
}

/**
 * Whether a frame URL belongs to our renderer: same origin as the dev server, or the very
 * index.html we loaded from disk.
 */
export function isTrustedSenderUrl(frameUrl: string, rendererUrl: string): boolean {
  let frame: URL
  let renderer: URL
  try {
    frame = new URL(frameUrl)
    renderer = new URL(rendererUrl)
  } catch {
    return false
  }
  if (renderer.protocol === 'file:') {
    return frame.protocol === 'file:' && frame.pathname === renderer.pathname
  }
  return frame.origin === renderer.origin
}

function failure(error: IpcError): { ok: false; error: IpcError } {
  return { ok: false, error }
}
