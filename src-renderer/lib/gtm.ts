import type {
  IpcChannel,
  IpcError,
  IpcEvent,
  IpcEventName,
  IpcInput,
  IpcOutput,
} from '../../shared/ipc.js'

/** A failed call, as the screens show it: the code for logic, the message for the admin. */
export class CallError extends Error {
  readonly code: string
  readonly retryable: boolean
  constructor(error: IpcError) {
    super(error.message)
    this.name = 'CallError'
    this.code = error.code
    this.retryable = error.retryable
  }
}

type Invoke = (
  input?: unknown,
) => Promise<{ ok: true; data: unknown } | { ok: false; error: IpcError }>

/**
 * Calls one channel of window.gtm and returns its data; a failure throws CallError. Every screen
 * goes through here, so none of them handles the `{ok}` envelope itself.
 */
export async function call<C extends IpcChannel>(
  channel: C,
  ...input: IpcInput<C> extends void ? [] : [IpcInput<C>]
): Promise<IpcOutput<C>> {
  const [domain = '', verb = ''] = channel.split(':')
  const group = (window.gtm as unknown as Record<string, Record<string, Invoke>>)[domain]
  const fn = group?.[verb]
  if (!fn)
    throw new CallError({
      code: 'internal',
      message: `The app has no "${channel}" call.`,
      retryable: false,
    })
  const result = await fn(input[0])
  if (!result.ok) throw new CallError(result.error)
  return result.data as IpcOutput<C>
}

/** Listens to one of main's events; returns what stops listening. */
export function onEvent<E extends IpcEventName>(
  event: E,
  listener: (data: IpcEvent<E>) => void,
): () => void {
  return window.gtm.on(event, listener)
}

/** The message to show for anything a call threw. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message
  return String(err)
}
