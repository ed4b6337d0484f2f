/** How the agent's long-running commands stop on Ctrl-C, SIGTERM and SIGHUP: gracefully. */
import os from 'node:os'

const SHUTDOWN_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

/** After the second signal, how long the command may take to record its stop before it is cut. */
const ABORT_GRACE_MS = 10_000

export interface ShutdownOptions {
  /**
   * Aborted by the second signal: in-flight work (a vendor request) stops at once, and the
   * command gets ABORT_GRACE_MS to record that before the process exits. Without it, the second
   * signal exits at once.
   */
  abort?: AbortController
}

/**
 * Makes SIGINT, SIGTERM and SIGHUP abort `controller` (a graceful shutdown) instead of ending
 * the process, until the returned function is called. Other listeners are set aside meanwhile, so
 * none of them can exit the process and cut a graceful shutdown short. The second signal aborts
 * `options.abort` (or exits, without one); the next exits immediately with 128 + its number.
 */
export function takeOverShutdownSignals(
  controller: AbortController,
  options: ShutdownOptions = {},
): () => void {
  const stashed = new Map<NodeJS.Signals, Array<(...args: unknown[]) => void>>()
  let forceExit: NodeJS.Timeout | undefined
  const onSignal = (signal: NodeJS.Signals): void => {
    const code = 128 + (os.constants.signals[signal] ?? 0)
    if (!controller.signal.aborted) return controller.abort()
    const abort = options.abort
    if (!abort || abort.signal.aborted) process.exit(code)
    abort.abort()
    forceExit = setTimeout(() => process.exit(code), ABORT_GRACE_MS)
    forceExit.unref()
  }
  for (const signal of SHUTDOWN_SIGNALS) {
    stashed.set(signal, process.listeners(signal) as Array<(...args: unknown[]) => void>)
    process.removeAllListeners(signal)
    process.on(signal, onSignal)
  }
  return () => {
    clearTimeout(forceExit)
    for (const signal of SHUTDOWN_SIGNALS) {
      process.off(signal, onSignal)
      for (const listener of stashed.get(signal) ?? []) process.on(signal, listener)
    }
  }
}

/** What `whileInterruptible` hands the work: when to stop, and when to drop what is in flight. */
export interface Interrupts {
  /** Aborted by the first signal: stop at the next safe point (after the page or batch in hand). */
  stop: AbortSignal
  /** Aborted by the second signal: abort in-flight requests now and record the stop. */
  abort: AbortSignal
}

/**
 * Runs `fn` with the signals of a two-step shutdown: the first Ctrl-C (or SIGTERM, SIGHUP)
 * aborts `stop`, the second aborts `abort`, a third (or a stop not recorded within 10 s of
 * the second) exits at once.
 */
export async function whileInterruptible<T>(
  fn: (interrupts: Interrupts) => Promise<T>,
): Promise<T> {
  const stop = new AbortController()
  const abort = new AbortController()
  const restore = takeOverShutdownSignals(stop, { abort })
  try {
    return await fn({ stop: stop.signal, abort: abort.signal })
  } finally {
    restore()
  }
}
