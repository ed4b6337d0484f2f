import { VendorError, describeError } from '../../shared/errors.js'
import type { ConnectorHealthStatus } from '../../shared/schemas.js'

export interface VendorRequest {
  /** The vendor's display name, used in error messages ("Salesforce rejected …"). */
  vendor: string
  headers?: Record<string, string>
  method?: string
  body?: string
  signal?: AbortSignal
  timeoutMs?: number
  /**
   * For vendors whose error bodies say more than their status: sees every non-2xx response
   * (status and body text) before the generic rules and returns the error to throw, or
   * undefined to leave the response to them. Salesforce-style APIs, for one, answer an exhausted
   * daily quota with 403 `REQUEST_LIMIT_EXCEEDED`, which the generic rules would call an auth
   * failure. The body may carry vendor detail: copy only the fields meant for a message.
   */
  classifyError?: (response: { status: number; body: string }) => VendorError | undefined
}

/**
 * GETs (or sends) JSON to a vendor API and maps failures to VendorError: 401/403 are auth
 * failures (not retried), 429 is throttling (with Retry-After), 5xx and network errors are
 * transient; `classifyError`, when given, decides first. The URL and headers never appear in
 * the error: they can carry credentials.
 */
export async function vendorJson<T = unknown>(url: string, request: VendorRequest): Promise<T> {
  const timeout = AbortSignal.timeout(request.timeoutMs ?? 30_000)
  const signal = request.signal ? AbortSignal.any([request.signal, timeout]) : timeout
  let res: Response
  try {
    res = await fetch(url, {
      method: request.method ?? 'GET',
      headers: { accept: 'application/json', ...request.headers },
      ...(request.body === undefined ? {} : { body: request.body }),
      signal,
    })
  } catch (cause) {
    if (request.signal?.aborted) throw cause
    throw new VendorError(
      'vendor_unavailable',
      `${request.vendor} could not be reached (${networkReason(cause)}).`,
      {
        cause: new Error(networkReason(cause)),
        retryable: true,
      },
    )
  }
  if (!res.ok) {
    if (!request.classifyError) {
      await res.body?.cancel()
      throw statusError(res, request.vendor)
    }
    const body = await res.text().catch(() => '')
    throw request.classifyError({ status: res.status, body }) ?? statusError(res, request.vendor)
  }
  try {
    return (await res.json()) as T
  } catch (cause) {
    throw new VendorError(
      'vendor_bad_response',
      `${request.vendor} sent a response that is not valid JSON.`,
      {
        cause,
        retryable: true,
      },
    )
  }
}

/** The generic rules for a non-2xx response, from its status (and Retry-After) alone. */
function statusError(res: Response, vendor: string): VendorError {
  if (res.status === 401 || res.status === 403) {
    return new VendorError(
      'vendor_auth_failed',
      `${vendor} rejected the credentials (HTTP ${res.status}). Reconnect ${vendor} with valid credentials.`,
      { retryable: false },
    )
  }
  if (res.status === 429) {
    return new VendorError('vendor_rate_limited', `${vendor} is throttling requests (HTTP 429).`, {
      retryable: true,
      ...retryAfter(res.headers.get('retry-after')),
    })
  }
  if (res.status >= 500) {
    return new VendorError(
      'vendor_unavailable',
      `${vendor} answered HTTP ${res.status}; it will be retried.`,
      { retryable: true },
    )
  }
  return new VendorError(
    'vendor_bad_response',
    `${vendor} refused the request (HTTP ${res.status}).`,
    { retryable: false },
  )
}

/** Retry-After as seconds or an HTTP date, in milliseconds. */
function retryAfter(header: string | null): { retryAfterMs?: number } {
  if (!header) return {}
  const seconds = Number(header)
  if (Number.isFinite(seconds)) return { retryAfterMs: Math.max(0, seconds * 1000) }
  const at = Date.parse(header)
  return Number.isFinite(at) ? { retryAfterMs: Math.max(0, at - Date.now()) } : {}
}

function networkReason(err: unknown): string {
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err
  const code = (cause as { code?: unknown } | null)?.code
  if (typeof code === 'string') return code
  if (err instanceof Error && err.name === 'TimeoutError') return 'timed out'
  return err instanceof Error ? err.message : 'network error'
}

/**
 * A health check built from one cheap authenticated call: healthy with its latency when the
 * call succeeds, down with the vendor error's message when it fails.
 */
export async function probeHealth(
  probe: () => Promise<unknown>,
  healthyMessage: string,
): Promise<ConnectorHealthStatus> {
  const started = performance.now()
  const result = (status: 'healthy' | 'down', message: string): ConnectorHealthStatus => ({
    status,
    latencyMs: performance.now() - started,
    checkedAt: new Date(),
    message,
    details: {},
  })
  try {
    await probe()
    return result('healthy', healthyMessage)
  } catch (err) {
    return result('down', describeError(err))
  }
}
