import { AppError, VendorError } from '../../../shared/errors.js'

/**
 * A VendorError for anything a Salesforce call threw: jsforce's HttpApiError (its `errorCode` is
 * Salesforce's, or `ERROR_HTTP_<status>` with the raw body as message), network errors, and the
 * refresh failure jsforce rewraps. `doing` completes "while …" for the message. A session that
 * has already failed to sign in again (SalesforceSession's `authFailure`) answers with that.
 * https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
 */
export function toVendorError(
  err: unknown,
  doing: string,
  session?: { readonly authFailure: AppError | undefined },
): AppError {
  if (err instanceof AppError) return err
  if (session?.authFailure) return session.authFailure
  const { code, message } = salesforceError(err)
  if (code === 'INVALID_SESSION_ID' || code === 'ERROR_HTTP_401') {
    return new VendorError(
      'vendor_auth_failed',
      `Salesforce rejected the session while ${doing} (INVALID_SESSION_ID). Reconnect Salesforce in Settings.`,
      { cause: err },
    )
  }
  if (
    [
      'API_DISABLED_FOR_ORG',
      'API_CURRENTLY_DISABLED',
      'INSUFFICIENT_ACCESS',
      'INVALID_AUTH_HEADER',
    ].includes(code)
  ) {
    return new VendorError(
      'vendor_auth_failed',
      `Salesforce refused API access while ${doing} (${code}). Check the connected user's API permission, then reconnect Salesforce.`,
      { cause: err },
    )
  }
  if (code === 'REQUEST_LIMIT_EXCEEDED') {
    return new VendorError(
      'vendor_quota_exhausted',
      "Salesforce's daily API request limit is used up (REQUEST_LIMIT_EXCEEDED); the sync resumes from where it stopped on a later run.",
      { cause: err, retryable: true },
    )
  }
  if (code === 'ERROR_HTTP_429') {
    return new VendorError(
      'vendor_rate_limited',
      `Salesforce is throttling requests while ${doing}.`,
      {
        cause: err,
        retryable: true,
        retryAfterMs: 60_000,
      },
    )
  }
  if (/^ERROR_HTTP_5\d\d$/.test(code) || TRANSIENT.has(code) || NETWORK.test(code)) {
    return new VendorError(
      'vendor_unavailable',
      `Salesforce was unavailable while ${doing} (${code}); it will be retried.`,
      { cause: err, retryable: true },
    )
  }
  return new VendorError(
    'vendor_bad_response',
    `Salesforce refused the request while ${doing} (${code}): ${clip(message)}`,
    { cause: err, retryable: false },
  )
}

/** Salesforce error codes that go away by themselves. */
export const TRANSIENT = new Set([
  'SERVER_UNAVAILABLE',
  'UNABLE_TO_LOCK_ROW',
  'REQUEST_RUNNING_TOO_LONG',
  'QUERY_TIMEOUT',
  'TXN_SECURITY_METERING_ERROR',
])
const NETWORK = /^(FetchError|AbortError|E[A-Z]+|UND_ERR_\w+|Request Timeout)$/

/** Salesforce's error code and message inside whatever jsforce threw. */
export function salesforceError(err: unknown): { code: string; message: string } {
  if (!(err instanceof Error)) return { code: 'UNKNOWN', message: String(err) }
  const errorCode = (err as { errorCode?: unknown }).errorCode
  const networkCode = (err as { code?: unknown }).code
  let code =
    typeof errorCode === 'string'
      ? errorCode
      : typeof networkCode === 'string'
        ? networkCode
        : err.name
  let message = err.message
  // With a plain-text response type jsforce keeps the JSON error body as the message.
  if (/^ERROR_HTTP_\d+$/.test(code) && message.trimStart().startsWith('[')) {
    try {
      const body = JSON.parse(message) as Array<{ errorCode?: unknown; message?: unknown }>
      if (typeof body[0]?.errorCode === 'string') {
        code = body[0].errorCode
        message = typeof body[0].message === 'string' ? body[0].message : ''
      }
    } catch {
      // Not JSON: keep the status code.
    }
  }
  if (err.message === 'Request Timeout') code = 'Request Timeout'
  return { code, message }
}

function clip(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim()
  return line.length > 300 ? `${line.slice(0, 297)}...` : line
}
