/**
 * What a recorded failure means for an admin: its kind (something to fix in the settings, a
 * passing problem the next run retries, or a fault of the system) and the next step, from its
 * error code (shared/errors.ts).
 */
import { retryableCodes, type ErrorCode } from '../../shared/errors.js'

export type ErrorKind = 'configuration' | 'transient' | 'system'

/** The kind of a failure by its code; unknown codes (runs recorded before codes were) are system. */
export function errorKind(code: string): ErrorKind {
  if (SYSTEM.has(code) || !isErrorCode(code)) return 'system'
  // A quota refills by itself, though a run does not wait for it.
  if (code === 'vendor_quota_exhausted' || retryableCodes[code]) return 'transient'
  return 'configuration'
}

/** One sentence an admin can act on. `message` is the recorded (redacted) error. */
export function nextStep(failure: { code: string; vendor: string; message: string }): string {
  const { vendor, message } = failure
  switch (failure.code) {
    case 'vendor_auth_failed':
      return /refresh token|invalid_grant|expired|revoked/i.test(message)
        ? `Reconnect ${vendor}: the refresh token was revoked or has expired, so ${vendor} refuses the stored sign-in.`
        : `Reconnect ${vendor} with valid credentials: it refused the stored ones.`
    case 'config_invalid':
      return /accept/i.test(message)
        ? `Accept ${vendor}'s terms for this tenant: its syncs read nothing until an admin does.`
        : `Check the ${vendor} settings and reconnect it: the agent cannot use them as they are.`
    case 'config_missing':
      return `Add the missing ${vendor} setting named in the message, then reconnect it.`
    case 'mapping_invalid':
      return `Fix the ${vendor} field mappings on the Mappings screen (or reset them to the defaults).`
    case 'record_invalid':
      return `Review ${vendor}'s rejected records: fix the mapping or the data in ${vendor}, then retry them.`
    case 'decryption_failed':
    case 'encryption_key_invalid':
    case 'encryption_key_missing':
      return `Restore the encryption key the ${vendor} credentials were saved with, or reconnect ${vendor} to save them again.`
    case 'connector_not_connected':
      return `Reconnect ${vendor}: it was disconnected when the sync was due.`
    case 'connector_unknown':
      return `Update the agent: this one has no ${vendor} connector. Or disconnect ${vendor}.`
    case 'vendor_quota_exhausted':
      return `Nothing to do: syncs resume when ${vendor}'s daily API allowance refills. Raise the quota threshold if this happens often.`
    case 'vendor_unavailable':
      return `Nothing to do: the next run retries. If it keeps failing, check ${vendor}'s status page.`
    case 'vendor_bad_response':
      return `If it happens again, send the diagnostics to support: ${vendor} answered in a form the agent cannot read.`
    case 'db_unavailable':
    case 'db_query_failed':
      return 'Check that Postgres is running and reachable from this machine; the next run retries.'
    default:
      return errorKind(failure.code) === 'transient'
        ? 'Nothing to do: the next run retries.'
        : errorKind(failure.code) === 'configuration'
          ? `Check the ${vendor} connection's settings and reconnect it.`
          : 'If it happens again, send the diagnostics to support.'
  }
}

// --- implementation ---

/** Faults of the database or the agent itself, whatever their retry policy says. */
const SYSTEM = new Set<string>([
  'db_unavailable',
  'db_query_failed',
  'internal',
  'vendor_bad_response',
])

function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(retryableCodes, code)
}
