import type { ConnectorHealthStatus } from '../../../shared/schemas.js'
import type { Credentials, HealthOptions } from '../interface.js'
import { toVendorError } from './errors.js'
import { readLimits } from './fetch.js'
import { SalesforceSession, parseStored, type SessionOptions } from './session.js'

/**
 * Health options; `onCredentialsChanged`, when the caller can persist a refreshed token, lets the
 * check refresh an expired one. Without it an expired token is reported, not refreshed: with
 * refresh-token rotation a refresh nobody stores would strand the stored refresh token.
 */
export type SalesforceHealthOptions = HealthOptions & Pick<SessionOptions, 'onCredentialsChanged'>

/**
 * Signs in (refreshing if needed and allowed), reads GET /limits, and reports latency and the
 * daily API usage: healthy, degraded at or above the quota threshold, down when Salesforce
 * refuses or cannot be reached.
 */
export async function checkHealth(
  credentials: Credentials,
  options: SalesforceHealthOptions = {},
): Promise<ConnectorHealthStatus> {
  const config = parseStored(credentials)
  const session = new SalesforceSession(config, options)
  const started = performance.now()
  const details: Record<string, unknown> = {
    instanceUrl: config.instanceUrl,
    apiVersion: config.apiVersion,
    quotaThreshold: config.quotaThreshold,
  }
  const status = (
    state: ConnectorHealthStatus['status'],
    message: string,
    extra: Record<string, unknown> = {},
  ): ConnectorHealthStatus => ({
    status: state,
    latencyMs: performance.now() - started,
    checkedAt: new Date(),
    message,
    details: { ...details, ...extra },
  })
  try {
    const usage = await readLimits(session)
    const pct = Math.round((usage.used / usage.max) * 100)
    const summary = `Salesforce answered in ${Math.round(performance.now() - started)} ms; API usage today is ${usage.used} of ${usage.max} requests (${pct}%).`
    if (usage.used / usage.max >= config.quotaThreshold) {
      return status(
        'degraded',
        `${summary} That is past the ${Math.round(config.quotaThreshold * 100)}% threshold, so syncs pause until usage drops.`,
        { apiUsage: usage },
      )
    }
    return status('healthy', summary, { apiUsage: usage })
  } catch (err) {
    const error = toVendorError(err, 'checking the connection', session)
    if (error.code === 'vendor_auth_failed' && !session.canRefresh && !session.authFailure) {
      return status(
        'degraded',
        "Salesforce is reachable but rejected the stored access token (sessions expire after the org's timeout). The next sync refreshes it.",
        { code: error.code },
      )
    }
    if (error.code === 'vendor_quota_exhausted') {
      return status('degraded', error.userMessage, { code: error.code })
    }
    return status('down', error.userMessage, { code: error.code })
  }
}
