import { describe, expect, it } from 'vitest'
import { VendorError } from '../../shared/errors.js'
import {
  DEFAULT_RETRY_POLICY,
  SessionExpiredError,
  retryAfterMs,
  retryDelay,
  withRetry,
  type RetryEvent,
} from '../../src-agent/connectors/retry.js'
import { TransportFailure } from '../../src-agent/connectors/transport.js'

const FAST = { baseDelayMs: 1, maxDelayMs: 4 }
const outage = (reason = 'http_503', detail?: string) =>
  new VendorError('vendor_unavailable', 'Acme answered HTTP 503.', {
    cause: new TransportFailure(reason, detail),
    retryable: true,
  })

/** An attempt function that fails with `errors` in turn, then returns 'ok'. */
function flaky(...errors: Error[]) {
  const calls: number[] = []
  const fn = (n: number) => {
    calls.push(n)
    const err = errors.shift()
    return err === undefined ? Promise.resolve('ok') : Promise.reject(err)
  }
  return { fn, calls }
}

describe('the retry policy', () => {
  it('retries transient failures and reports each retry with its reason', async () => {
    const events: RetryEvent[] = []
    const { fn, calls } = flaky(
      outage('cut_body', '5 of 10 bytes'),
      outage('idle_timeout', '500 ms'),
    )
    const result = await withRetry(fn, {
      vendor: 'Acme',
      what: 'GET /v1/things',
      policy: FAST,
      onRetry: (event) => events.push(event),
    })
    expect(result).toBe('ok')
    expect(calls).toEqual([1, 2, 3])
    expect(events.map(({ attempt, reason, detail }) => ({ attempt, reason, detail }))).toEqual([
      { attempt: 1, reason: 'cut_body', detail: '5 of 10 bytes' },
      { attempt: 2, reason: 'idle_timeout', detail: '500 ms' },
    ])
  })

  it('gives up after maxAttempts and throws the last failure', async () => {
    const last = outage('connection_reset', 'ECONNRESET')
    const { fn, calls } = flaky(outage(), outage(), last, outage())
    await expect(
      withRetry(fn, { vendor: 'Acme', what: 'GET /', policy: { ...FAST, maxAttempts: 3 } }),
    ).rejects.toBe(last)
    expect(calls).toEqual([1, 2, 3])
  })

  it('does not retry what will not change: refused credentials, bad requests, quotas, bugs', async () => {
    const permanent = [
      new VendorError('vendor_auth_failed', 'Acme rejected the credentials.'),
      new VendorError('vendor_bad_response', 'Acme refused the request (HTTP 400).', {
        retryable: false,
      }),
      new VendorError('vendor_quota_exhausted', 'Daily limit used up.', { retryable: true }),
      new TypeError('a bug'),
    ]
    for (const err of permanent) {
      const { fn, calls } = flaky(err)
      await expect(withRetry(fn, { vendor: 'Acme', what: 'GET /', policy: FAST })).rejects.toBe(err)
      expect(calls).toEqual([1])
    }
  })

  it('waits what a throttled vendor asks for, and leaves a long wait to the caller', async () => {
    const throttled = (ms: number) =>
      new VendorError('vendor_rate_limited', 'Acme is throttling.', {
        retryable: true,
        retryAfterMs: ms,
      })
    const events: RetryEvent[] = []
    const short = flaky(throttled(30))
    const started = Date.now()
    await withRetry(short.fn, {
      vendor: 'Acme',
      what: 'GET /',
      policy: FAST,
      onRetry: (e) => events.push(e),
    })
    expect(Date.now() - started).toBeGreaterThanOrEqual(25)
    expect(events[0]?.delayMs).toBe(30)

    const long = throttled(DEFAULT_RETRY_POLICY.maxRetryAfterMs + 1)
    const once = flaky(long)
    await expect(withRetry(once.fn, { vendor: 'Acme', what: 'GET /' })).rejects.toBe(long)
    expect(once.calls).toEqual([1])
  })

  it('refreshes an expired session once, then calls a second refusal an auth failure', async () => {
    let refreshes = 0
    const refreshSession = () => {
      refreshes += 1
      return Promise.resolve()
    }
    const renewed = flaky(new SessionExpiredError('Acme'))
    await expect(
      withRetry(renewed.fn, { vendor: 'Acme', what: 'GET /', refreshSession }),
    ).resolves.toBe('ok')
    expect(refreshes).toBe(1)

    const still = new SessionExpiredError('Acme')
    const refused = flaky(new SessionExpiredError('Acme'), still)
    await expect(
      withRetry(refused.fn, { vendor: 'Acme', what: 'GET /', refreshSession }),
    ).rejects.toBe(still)
    expect(refreshes).toBe(2)
    expect(still).toMatchObject({ code: 'vendor_auth_failed', retryable: false })

    // Without a way to store a new token, an expired session is not refreshed at all.
    const noRefresh = flaky(new SessionExpiredError('Acme'))
    await expect(withRetry(noRefresh.fn, { vendor: 'Acme', what: 'GET /' })).rejects.toBeInstanceOf(
      SessionExpiredError,
    )
    expect(noRefresh.calls).toEqual([1])
  })

  it('stops waiting at once when the caller cancels', async () => {
    const controller = new AbortController()
    const reason = new Error('cancelled by the admin')
    const { fn, calls } = flaky(outage(), outage())
    const pending = withRetry(fn, {
      vendor: 'Acme',
      what: 'GET /',
      signal: controller.signal,
      policy: { baseDelayMs: 60_000, maxDelayMs: 60_000 },
      random: () => 0.99,
    })
    setTimeout(() => controller.abort(reason), 20)
    const started = Date.now()
    await expect(pending).rejects.toBe(reason)
    expect(Date.now() - started).toBeLessThan(1_000)
    expect(calls).toEqual([1])
  })

  it('starts no new attempt after a stop: the attempt in flight finishes, its failure is the answer', async () => {
    const stop = new AbortController()
    const failure = outage('idle_timeout', '2000 ms')
    const events: RetryEvent[] = []
    const calls: number[] = []
    const pending = withRetry(
      (n) => {
        calls.push(n)
        // The stop arrives while the first attempt is in flight.
        stop.abort()
        return Promise.reject(failure)
      },
      {
        vendor: 'Acme',
        what: 'GET /',
        stop: stop.signal,
        policy: FAST,
        onRetry: (e) => events.push(e),
      },
    )
    await expect(pending).rejects.toBe(failure)
    expect(calls).toEqual([1])
    expect(events).toEqual([])

    // A success in flight when the stop comes is still the answer.
    const late = new AbortController()
    await expect(
      withRetry(
        () => {
          late.abort()
          return Promise.resolve('page')
        },
        { vendor: 'Acme', what: 'GET /', stop: late.signal },
      ),
    ).resolves.toBe('page')
  })

  it('ends a backoff wait at once when a stop comes, with the failure that started it', async () => {
    const stop = new AbortController()
    const { fn, calls } = flaky(outage('http_503'), outage())
    const pending = withRetry(fn, {
      vendor: 'Acme',
      what: 'GET /',
      stop: stop.signal,
      policy: { baseDelayMs: 60_000, maxDelayMs: 60_000 },
      random: () => 0.99,
    })
    setTimeout(() => stop.abort(), 20)
    const started = Date.now()
    await expect(pending).rejects.toMatchObject({ code: 'vendor_unavailable' })
    expect(Date.now() - started).toBeLessThan(1_000)
    expect(calls).toEqual([1])
  })

  it('backs off exponentially with full jitter, capped', () => {
    const policy = { ...DEFAULT_RETRY_POLICY, baseDelayMs: 500, maxDelayMs: 3_000 }
    const top = (retry: number) => retryDelay(outage(), retry, policy, () => 0.999_999)!
    expect([1, 2, 3, 4, 5].map(top)).toEqual([499, 999, 1_999, 2_999, 2_999])
    expect(retryDelay(outage(), 3, policy, () => 0)).toBe(0)
  })

  it('reads Retry-After (seconds or a date) and RateLimit-Reset', () => {
    expect(retryAfterMs({ 'retry-after': '2' })).toBe(2_000)
    const inAMinute = new Date(Date.now() + 60_000).toUTCString()
    expect(retryAfterMs({ 'retry-after': inAMinute })).toBeGreaterThan(55_000)
    expect(retryAfterMs({ 'ratelimit-reset': '7' })).toBe(7_000)
    expect(retryAfterMs({ 'retry-after': 'soon' })).toBeUndefined()
    expect(retryAfterMs({})).toBeUndefined()
  })
})
