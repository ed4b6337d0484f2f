/** How the agent's long-running commands stop on Ctrl-C, SIGTERM and SIGHUP: gracefully. */
import os from 'node:os'

const SHUTDOWN_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

/**
 * Makes SIGINT, SIGTERM and SIGHUP abort `controller` (a graceful shutdown) instead of ending
 * the process, until the returned function is called. Other listeners are set aside meanwhile, so
 * none of them can exit the process and cut a graceful shutdown short. A second signal exits
 * immediately with 128 + its number.
 */
export function takeOverShutdownSignals(controller: AbortController): () => void {
  const stashed = new Map<NodeJS.Signals, Array<(...args: unknown[]) => void>>()
  const onSignal = (signal: NodeJS.Signals): void => {
    if (controller.signal.aborted) process.exit(128 + (os.constants.signals[signal] ?? 0))
    controller.abort()
  }
  for (const signal of SHUTDOWN_SIGNALS) {
    stashed.set(signal, process.listeners(signal) as Array<(...args: unknown[]) => void>)
    process.removeAllListeners(signal)
    process.on(signal, onSignal)
  }
  return () => {
    for (const signal of SHUTDOWN_SIGNALS) {
      process.off(signal, onSignal)
      for (const listener of stashed.get(signal) ?? []) process.on(signal, listener)
    }
  }
}

/**
 * Runs `fn` with a signal that the first Ctrl-C (or SIGTERM, SIGHUP) aborts, so long work stops
 * at its next safe point (after the page or batch in hand); a second signal exits at once.
 */
export async function whileInterruptible<T>(fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const controller = new AbortController()
  const restore = takeOverShutdownSignals(controller)
  try {
    return await fn(controller.signal)
  } finally {
    restore()
  }
}
