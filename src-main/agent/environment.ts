/**
 * The environment main starts the agent with: the same variables `gtm-agent` reads on a server,
 * filled from the app's settings and the OS keychain. Pointed at a shared Postgres and Temporal,
 * the app configures connections that an on-prem `gtm-agent worker` then runs.
 */
import os from 'node:os'
import type { Settings } from '../../shared/settings.js'
import { AGENT_ENV } from '../../shared/rpc.js'

/** Variables the agent reads; the app sets them, so inherited values do not leak in. */
const AGENT_VARIABLES =
  /^(DATABASE_URL|CONNECTOR_ENCRYPTION_KEYS?(_PREVIOUS)?|TEMPORAL_[A-Z_]+|GTM_[A-Z_]+)$/

export const DATABASE_PASSWORD_NAME = 'database-password'

export interface AgentEnvironmentInput {
  settings: Settings
  encryptionKey: string
  /** The shared database's password, from the keychain; null when none is kept. */
  databasePassword: string | null
  /** settings.dataFolder, or the app's own folder for agent data. */
  defaultDataFolder: string
  /** The Temporal CLI shipped with the app (packaged builds), for the local dev server. */
  temporalCliPath?: string
  inherited?: Record<string, string | undefined>
  /** 'off' for an agent that runs no Temporal worker. */
  worker?: 'on' | 'off'
}

export function agentEnvironment(input: AgentEnvironmentInput): Record<string, string> {
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(input.inherited ?? process.env)) {
    if (value !== undefined && !AGENT_VARIABLES.test(name)) env[name] = value
  }
  const { settings } = input
  env['CONNECTOR_ENCRYPTION_KEY'] = input.encryptionKey
  env['GTM_DATA_DIR'] = settings.dataFolder ?? input.defaultDataFolder
  env[AGENT_ENV.user] = `app:${osUser()}`
  if (input.worker === 'off') env[AGENT_ENV.worker] = 'off'
  if (input.temporalCliPath) env['TEMPORAL_CLI_PATH'] = input.temporalCliPath
  if (settings.database.mode === 'external') {
    env['DATABASE_URL'] = databaseUrl(settings.database, input.databasePassword)
  }
  if (settings.temporal.mode === 'external') {
    env['TEMPORAL_ADDRESS'] = settings.temporal.address
    env['TEMPORAL_NAMESPACE'] = settings.temporal.namespace
  }
  return env
}

/** postgres://user:password@host:port/database, TLS required unless the settings say not. */
export function databaseUrl(
  db: Extract<Settings['database'], { mode: 'external' }>,
  password: string | null,
): string {
  const url = new URL('postgres://localhost')
  url.hostname = db.host
  url.port = String(db.port)
  url.pathname = `/${encodeURIComponent(db.database)}`
  url.username = encodeURIComponent(db.user)
  if (password) url.password = encodeURIComponent(password)
  if (db.ssl) url.searchParams.set('sslmode', 'require')
  return url.toString()
}

function osUser(): string {
  try {
    return os.userInfo().username
  } catch {
    return 'unknown'
  }
}
