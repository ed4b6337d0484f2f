/**
 * The one retry policy for vendor calls. Every connector call (sync, connect, health, writeback,
 * token refresh) goes through `withRetry`: transient failures are tried again with capped
 * exponential backoff and full jitter, a bounded number of times; an expired session is refreshed
 * once; anything else is thrown at once. Nothing below it (jsforce included) retries by itself.
 * Temporal's activity retries sit above it: they only see a call that used up this budget.
 */
import { VendorError, type ErrorCode } from '../../shared/errors.js'
import type { Logger } from '../logging/logger.js'
import {
  callLabelsOf,
  type CallLabels,
  labelKey,
  vendorRequestsTotal,
  vendorRetriesTotal,
} from '../telemetry/metrics.js'

export interface RetryPolicy {
  /** Tries in all, the first one included (a session refresh adds one more try, once). */
  maxAttempts: number
  /** The backoff ceiling before the first retry; it doubles for each one after. */
  baseDelayMs: number
  /** The backoff ceiling never grows past this. */
  maxDelayMs: number
  /**
   * A throttled call whose Retry-After is longer than this is not waited out inside the call: the
   * error goes up with its `retryAfterMs`, and the run (or Temporal) waits instead.
   */
  maxRetryAfterMs: number
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 5,
  baseDelayMs: 500,
  maxDelayMs: 30_000,
  maxRetryAfterMs: 120_000,
}

/** One retry, as reported to `onRetry` and the log. */
export interface RetryEvent {
  /** The attempt that just failed (1 is the first try). */
  attempt: number
  /**
   * Why it failed, a stable snake_case key to count by: `cut_body`, `idle_timeout`,
   * `connect_timeout`, `request_timeout`, `connection_reset`, `http_503`, `http_429`,
   * `session_expired`, a vendor's transient code (`unable_to_lock_row`)…
   */
  reason: string
  /** The particulars, for people: "10432 of 20864 bytes", "500 ms", "HTML page". */
  detail?: string
  /** The wait before the next attempt. */
  delayMs: number
}

export interface RetryOptions {
  /** The vendor's display name, for the log. */
  vendor: string
  /** What is called, for the log: a method and a path, never a query string or a header. */
  what: string
  policy?: Partial<RetryPolicy> | undefined
  /** The caller's cancellation: ends a wait at once and is never retried. */
  signal?: AbortSignal | undefined
  /**
   * The caller's stop (a first Ctrl-C or SIGTERM): the attempt in flight runs to its end, but no
   * new one starts after it. A failure once it is aborted is thrown as it is, and a wait between
   * attempts ends at once, so a stopped call ends within one request deadline.
   */
  stop?: AbortSignal | undefined
  log?: Logger | undefined
  /** Hears every retry (and session refresh) of the call. */
  onRetry?: ((event: RetryEvent) => void) | undefined
  /** Who the call is made for, on the vendor-call metrics (see CallLabels). */
  labels?: CallLabels | undefined
  /** Gets a new session after a SessionExpiredError; at most once per call. */
  refreshSession?: (() => Promise<void>) | undefined
  /** The source of jitter, 0 ≤ x < 1 (tests pass their own). */
  random?: () => number
}

/**
 * The vendor said the session (access token) expired or is invalid. `withRetry` refreshes it once
 * and tries again when it can; otherwise, or when the new one is refused too, it is an auth
 * failure that is not retried.
 */
export class SessionExpiredError extends VendorError {
  constructor(vendor: string, options: { cause?: unknown } = {}) {
    super(
      'vendor_auth_failed',
      `${vendor} rejected the session (INVALID_SESSION_ID) and it could not be renewed. Reconnect ${vendor} in Settings.`,
      { ...options, retryable: false },
    )
  }
}

/** Runs `attempt` under the retry policy; returns its first success or throws its last failure. */
export async function withRetry<T>(
  attempt: (n: number) => Promise<T>,
  options: RetryOptions,
): Promise<T> {
  const policy = { ...DEFAULT_RETRY_POLICY, ...options.policy }
  let refreshed = false
  let transientFailures = 0
  for (let n = 1; ; n++) {
    options.signal?.throwIfAborted()
    if (n > 1) options.stop?.throwIfAborted()
    const labels = callLabelsOf(options.vendor, options.labels)
    try {
      const result = await attempt(n)
      vendorRequestsTotal.inc({ ...labels, outcome: 'ok' })
      return result
    } catch (err) {
      vendorRequestsTotal.inc({ ...labels, outcome: 'error' })
      if (options.signal?.aborted || options.stop?.aborted) throw err
      if (err instanceof SessionExpiredError) {
        if (refreshed || !options.refreshSession) throw err
        refreshed = true
        report(options, { attempt: n, ...failureReason(err), delayMs: 0 }, err)
        await options.refreshSession()
        continue
      }
      if (!isTransient(err)) throw err
      transientFailures += 1
      if (transientFailures >= policy.maxAttempts) throw err
      const delayMs = retryDelay(err, transientFailures, policy, options.random ?? Math.random)
      if (delayMs === undefined) throw err
      report(options, { attempt: n, ...failureReason(err), delayMs }, err)
      // Stopped during the wait: the failure that started it is the call's answer.
      if (!(await wait(delayMs, options.signal, options.stop))) throw err
    }
  }
}

/** Failures that trying the same call again can fix: outages, throttling, broken responses. */
export function isTransient(err: unknown): err is VendorError {
  return err instanceof VendorError && err.retryable && TRANSIENT_CODES.has(err.code)
}

const TRANSIENT_CODES = new Set<ErrorCode>([
  'vendor_unavailable',
  'vendor_rate_limited',
  'vendor_bad_response',
])

/**
 * Full jitter: a random wait below min(maxDelayMs, baseDelayMs · 2^(retry−1)). A throttled call
 * waits what the vendor asked for instead, or is not retried when that is longer than the policy's
 * `maxRetryAfterMs` (undefined).
 */
export function retryDelay(
  err: VendorError,
  retry: number,
  policy: RetryPolicy,
  random: () => number,
): number | undefined {
  if (err.retryAfterMs !== undefined) {
    return err.retryAfterMs > policy.maxRetryAfterMs ? undefined : err.retryAfterMs
  }
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retry - 1))
  return Math.floor(random() * ceiling)
}

/**
 * How long a throttled vendor asked us to wait, in ms: `Retry-After` (seconds or an HTTP date),
 * else `RateLimit-Reset` (seconds until the window resets). Undefined when neither is usable.
 */
export function retryAfterMs(headers: Record<string, string | undefined>): number | undefined {
  const retryAfter = headers['retry-after']?.trim()
  if (retryAfter) {
    const seconds = Number(retryAfter)
    if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000)
    const at = Date.parse(retryAfter)
    if (Number.isFinite(at)) return Math.max(0, at - Date.now())
  }
  // The IETF draft's RateLimit-Reset is seconds until the window resets (Fathom sends it so).
  const reset = headers['ratelimit-reset']?.trim()
  const seconds = reset ? Number(reset) : Number.NaN
  return Number.isFinite(seconds) ? Math.max(0, seconds * 1000) : undefined
}

/**
 * Why a call failed: the reason of a TransportFailure among its causes, else the vendor's own
 * error code (`UNABLE_TO_LOCK_ROW` → `unable_to_lock_row`), else our error code.
 */
export function failureReason(err: unknown): Pick<RetryEvent, 'reason' | 'detail'> {
  if (err instanceof SessionExpiredError) return { reason: 'session_expired' }
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const { reason, detail, errorCode } = e as {
      reason?: unknown
      detail?: unknown
      errorCode?: unknown
    }
    if (typeof reason === 'string') {
      return typeof detail === 'string' ? { reason, detail } : { reason }
    }
    if (typeof errorCode === 'string') return { reason: errorCode.toLowerCase() }
  }
  if (err instanceof VendorError) return { reason: err.code }
  return { reason: err instanceof Error ? err.name : 'unknown' }
}

function report(options: RetryOptions, event: RetryEvent, err: VendorError): void {
  // Codes and reasons only: a message can quote a vendor body, a URL can carry a token.
  options.log?.info(
    { vendor: options.vendor, call: options.what, code: err.code, ...event },
    'vendor call failed; retrying',
  )
  vendorRetriesTotal.inc({
    ...callLabelsOf(options.vendor, options.labels),
    reason: labelKey(event.reason),
  })
  options.onRetry?.(event)
}

/**
 * Waits `ms`, or less when `stop` aborts first (then resolves false); an aborted `signal`
 * rejects with its reason. Every wait between vendor calls (backoff, Bulk job polls) is one.
 */
export function wait(
  ms: number,
  signal: AbortSignal | undefined,
  stop?: AbortSignal,
): Promise<boolean> {
  signal?.throwIfAborted()
  if (stop?.aborted) return Promise.resolve(false)
  if (ms <= 0) return Promise.resolve(true)
  return new Promise((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      stop?.removeEventListener('abort', onStop)
    }
    const onAbort = (): void => {
      done()
      reject(signal?.reason instanceof Error ? signal.reason : new Error('aborted'))
    }
    const onStop = (): void => {
      done()
      resolve(false)
    }
    const timer = setTimeout(() => {
      done()
      resolve(true)
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
    stop?.addEventListener('abort', onStop, { once: true })
  })
}
