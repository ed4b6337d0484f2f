import { describePostgresError, isConflictError } from '../../db/errors.js'
import { AppError, VendorError } from '../../shared/errors.js'
import { NEEDS_REAUTH_PREFIX } from './connection.js'
import { boundedMessage } from './storable.js'

/**
 * What a failed sync run means: how the run ends, whether it is worth another try, and what the
 * connection shows the admin.
 */
export interface SyncOutcome {
  code: string
  message: string
  retryable: boolean
  runStatus: 'failed' | 'paused'
  connectorStatus: 'connected' | 'error'
  connectorError: string
}

/**
 * How a failure ends a run and what it means for the connection. Its messages are what is
 * stored (sync_runs.error, connectors.last_sync_error), logged and printed, so each is bounded
 * (boundedMessage) and a database failure is told by its code and server message alone.
 */
export function classifyFailure(err: unknown, vendor: string): SyncOutcome {
  const outcome = classify(err, vendor)
  return {
    ...outcome,
    message: boundedMessage(outcome.message),
    connectorError: boundedMessage(outcome.connectorError),
  }
}

/** A failure in one sentence, safe to store: never a statement or its parameters. */
function describeFailure(err: unknown): string {
  // Drizzle's own message is "Failed query: <sql> params: <every value of the page>".
  if (err instanceof AppError) return err.userMessage
  return err instanceof Error ? describePostgresError(err) : String(err)
}

function classify(err: unknown, vendor: string): SyncOutcome {
  const message = describeFailure(err)
  if (err instanceof AppError && err.code === 'sync_cancelled') {
    // Nothing is wrong with the connection: it stays connected and the next sync resumes.
    return {
      code: err.code,
      message,
      retryable: true,
      runStatus: 'failed',
      connectorStatus: 'connected',
      connectorError: message,
    }
  }
  if (err instanceof VendorError && err.code === 'vendor_auth_failed') {
    return {
      code: err.code,
      message,
      retryable: false,
      runStatus: 'failed',
      connectorStatus: 'error',
      connectorError: `${NEEDS_REAUTH_PREFIX}${message}`,
    }
  }
  if (err instanceof VendorError && err.code === 'vendor_quota_exhausted') {
    return {
      code: err.code,
      message: `paused: API quota. ${message}`,
      retryable: true,
      runStatus: 'paused',
      connectorStatus: 'connected',
      connectorError: `paused: API quota. ${message}`,
    }
  }
  if (isConflictError(err)) {
    // Postgres broke a lock cycle with another writer (a webhook event) by failing this page:
    // the connection is fine, and the next try resumes from the last committed page.
    return {
      code: 'db_query_failed',
      message,
      retryable: true,
      runStatus: 'failed',
      connectorStatus: 'connected',
      connectorError: message,
    }
  }
  const retryable = err instanceof VendorError ? err.retryable : false
  const code = err instanceof AppError ? err.code : 'internal'
  return {
    code,
    message,
    retryable,
    runStatus: 'failed',
    // A transient failure leaves the connection usable; anything else needs an admin.
    connectorStatus: retryable ? 'connected' : 'error',
    connectorError: retryable ? `${vendor}: ${message}` : message,
  }
}

/** A run stopped by a stop or cancel: nothing is wrong with the connection. */
export function syncCancelled(): AppError {
  return new AppError(
    'sync_cancelled',
    'The sync was cancelled. The pages committed before it stopped are kept; the next sync resumes after them.',
  )
}
