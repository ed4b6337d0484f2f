/** The sign-in settings of a connector (client id, login URL …), checked the same for CLI and app. */
import type { z } from 'zod'
import { ConfigError } from '../../shared/errors.js'
import { registerSecret } from '../../shared/redact.js'
import type { AnyConnector } from '../connectors/interface.js'

/**
 * Parses `json` with `schema`; a failure names every failing key. The connector's secret keys
 * among the result (a client secret) are registered for redaction before any vendor call.
 */
export function parseSignInConfig<T>(
  connector: AnyConnector,
  schema: z.ZodType<T>,
  json: unknown,
): T {
  const result = schema.safeParse(json)
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const where = issue.path.length === 0 ? 'the config' : `"${issue.path.map(String).join('.')}"`
      return issue.code === 'invalid_type' && /received undefined$/.test(issue.message)
        ? `${where} is required`
        : `${where}: ${issue.message}`
    })
    throw new ConfigError(
      'config_invalid',
      `Invalid sign-in config for ${connector.id}: ${problems.join('; ')}`,
    )
  }
  if (typeof result.data === 'object' && result.data !== null) {
    for (const key of connector.secretConfigKeys) {
      const value = (result.data as Record<string, unknown>)[key]
      if (typeof value === 'string') registerSecret(value)
    }
  }
  return result.data
}
