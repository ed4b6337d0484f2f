import { VendorError, describeError } from '../../shared/errors.js'
import type { ConnectorHealthStatus } from '../../shared/schemas.js'
import type { Logger } from '../logging/logger.js'
import type { CallLabels } from '../telemetry/metrics.js'
import { withRetry, type RetryEvent, type RetryPolicy } from './retry.js'
import {
  TransportFailure,
  bodyText,
  sendHttp,
  transientStatus,
  type HttpAnswer,
  type Timeouts,
} from './transport.js'

export interface VendorRequest {
  /** The vendor's display name, used in error messages ("Salesforce rejected …"). */
  vendor: string
  headers?: Record<string, string>
  method?: string
  body?: string
  signal?: AbortSignal | undefined
  /** No retry after it aborts: the call ends with the attempt in flight (CredentialOptions.stop). */
  stop?: AbortSignal | undefined
  /** Deadlines of each attempt; the defaults are DEFAULT_TIMEOUTS (10 s, 60 s idle, 5 min). */
  timeouts?: Partial<Timeouts> | undefined
  /** The retry policy (retry.ts); `{ maxAttempts: 1 }` makes a single attempt. */
  retry?: Partial<RetryPolicy> | undefined
  /** Hears each retry: which attempt failed, why, and the wait before the next. */
  onRetry?: ((event: RetryEvent) => void) | undefined
  /** Where retries are logged (info). */
  log?: Logger | undefined
  /** Who the call is made for, on the vendor-call metrics (see CallLabels). */
  labels?: CallLabels | undefined
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
 * GETs (or sends) JSON to a vendor API under the deadlines and the retry policy, and maps
 * failures to VendorError: 401/403 are auth failures and other 4xx refusals (neither retried),
 * 429 is throttling (waits for Retry-After or RateLimit-Reset), 5xx, network errors, timeouts and
 * cut or unreadable bodies are transient (retried); `classifyError`, when given, decides first.
 * The URL and headers never appear in an error or a log line: they can carry credentials.
 */
export async function vendorJson<T = unknown>(url: string, request: VendorRequest): Promise<T> {
  return withRetry(() => attempt<T>(url, request), {
    vendor: request.vendor,
    what: `${request.method ?? 'GET'} ${new URL(url).pathname}`,
    policy: request.retry,
    signal: request.signal,
    stop: request.stop,
    log: request.log,
    onRetry: request.onRetry,
    labels: request.labels,
  })
}

async function attempt<T>(url: string, request: VendorRequest): Promise<T> {
  const answer = await sendHttp({
    vendor: request.vendor,
    url,
    method: request.method ?? 'GET',
    headers: { accept: 'application/json', ...request.headers },
    body: request.body,
    signal: request.signal,
    timeouts: request.timeouts,
  })
  if (answer.status < 200 || answer.status >= 300) {
    const classified = request.classifyError?.({
      status: answer.status,
      body: bodyText(answer.body),
    })
    throw (
      classified ?? transientStatus(request.vendor, answer) ?? statusError(answer, request.vendor)
    )
  }
  try {
    return JSON.parse(bodyText(answer.body)) as T
  } catch {
    // Not the parser's message: it quotes the body.
    throw (
      transientStatus(request.vendor, answer) ??
      new VendorError(
        'vendor_bad_response',
        `${request.vendor} sent a response that is not valid JSON.`,
        { cause: new TransportFailure('invalid_json'), retryable: true },
      )
    )
  }
}

/** The rules for a non-2xx status that is not transient: auth failures and refusals. */
function statusError(answer: HttpAnswer, vendor: string): VendorError {
  if (answer.status === 401 || answer.status === 403) {
    return new VendorError(
      'vendor_auth_failed',
      `${vendor} rejected the credentials (HTTP ${answer.status}). Reconnect ${vendor} with valid credentials.`,
      { retryable: false },
    )
  }
  return new VendorError(
    'vendor_bad_response',
    `${vendor} refused the request (HTTP ${answer.status}). Trying again will not help: check the connection's settings (base URL, account, permissions).`,
    { retryable: false },
  )
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
