/** Error codes every process understands. snake_case, stable: the UI and the CLI switch on them. */
export type ErrorCode =
  | 'config_invalid'
  | 'config_missing'
  | 'encryption_key_missing'
  | 'encryption_key_invalid'
  | 'decryption_failed'
  | 'mapping_invalid'
  | 'record_invalid'
  | 'connector_unknown'
  | 'connector_duplicate'
  | 'connector_not_connected'
  | 'tenant_unknown'
  | 'tenant_exists'
  | 'tenant_required'
  | 'vendor_auth_failed'
  | 'vendor_rate_limited'
  | 'vendor_unavailable'
  | 'vendor_bad_response'
  | 'vendor_quota_exhausted'
  | 'db_unavailable'
  | 'db_query_failed'
  | 'sync_incomplete'
  | 'sync_in_progress'
  | 'sync_cancelled'
  | 'signin_in_progress'
  | 'internal'

/**
 * Whether a failure with this code may succeed when the same step is tried again. Vendor
 * errors decide for themselves (VendorError.retryable); a quota never refills within a run's
 * retries, so it ends the run (paused) instead.
 */
export const retryableCodes: Record<ErrorCode, boolean> = {
  config_invalid: false,
  config_missing: false,
  encryption_key_missing: false,
  encryption_key_invalid: false,
  decryption_failed: false,
  mapping_invalid: false,
  record_invalid: false,
  connector_unknown: false,
  connector_duplicate: false,
  connector_not_connected: false,
  tenant_unknown: false,
  tenant_exists: false,
  tenant_required: false,
  vendor_auth_failed: false,
  vendor_rate_limited: true,
  vendor_unavailable: true,
  vendor_bad_response: false,
  vendor_quota_exhausted: false,
  db_unavailable: true,
  db_query_failed: true,
  sync_incomplete: true,
  // Another process (a `gtm-agent sync` without Temporal) holds the connection's lock.
  sync_in_progress: true,
  // The activity was cancelled (worker shutdown, workflow cancelled): not tried again here.
  sync_cancelled: false,
  // One sign-in at a time: the other one ends (or is cancelled) first.
  signin_in_progress: true,
  internal: false,
}

/** Base error: a code to switch on, a sentence an admin can act on, and the wrapped cause. */
export class AppError extends Error {
  readonly code: ErrorCode
  readonly userMessage: string

  constructor(code: ErrorCode, userMessage: string, options?: { cause?: unknown }) {
    super(userMessage, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = new.target.name
    this.code = code
    this.userMessage = userMessage
  }
}

/** Bad configuration, environment or input file. */
export class ConfigError extends AppError {}

/** A vendor API refused or failed. `retryable` tells the orchestrator whether to try again. */
export class VendorError extends AppError {
  readonly retryable: boolean
  readonly retryAfterMs: number | undefined

  constructor(
    code: ErrorCode,
    userMessage: string,
    options?: { cause?: unknown; retryable?: boolean; retryAfterMs?: number },
  ) {
    super(code, userMessage, options)
    this.retryable = options?.retryable ?? code !== 'vendor_auth_failed'
    this.retryAfterMs = options?.retryAfterMs
  }
}

/** Database failure. Never carries query parameters (they may hold credentials). */
export class DbError extends AppError {}

/** Encryption key or ciphertext problem. */
export class CryptoError extends AppError {}

/** A plain-language message for any thrown value, safe to show an admin. */
export function describeError(err: unknown): string {
  if (err instanceof AppError) return err.userMessage
  if (err instanceof Error) return err.message
  return String(err)
}

/** Failures that concern a whole connection, not one stream: the streams after it are not read. */
const CONNECTION_WIDE = new Set<string>([
  'sync_cancelled',
  'vendor_auth_failed',
  'vendor_quota_exhausted',
])

export function endsWholeSync(code: string | undefined): boolean {
  return CONNECTION_WIDE.has(code ?? '')
}

/**
 * A sync's error as the admin reads it: the failed stream's name first when the connector reads
 * several streams and the failure is that stream's own, not the connection's.
 */
export function syncFailureMessage(failure: {
  streams: number
  streamName: string
  code: string | undefined
  message: string
}): string {
  return failure.streams > 1 && !endsWholeSync(failure.code)
    ? `${failure.streamName}: ${failure.message}`
    : failure.message
}
