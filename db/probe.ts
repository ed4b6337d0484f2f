/**
 * Whether Postgres answers, asked on a connection of its own with a deadline: the pool's
 * connections wait as long as the server makes them, which a health check must not.
 */
import pg from 'pg'
import { scrubString } from '../shared/redact.js'
import { postgresError } from './errors.js'

export interface DatabaseProbe {
  reachable: boolean
  /** Connect plus `select 1`, when it answered. */
  latencyMs: number | null
  /** What failed, in words (never the password); null when it answered. */
  error: string | null
}

/** Connects as the pool does (same URL and role) and runs `select 1` within `timeoutMs`. */
export async function probeDatabase(
  pool: pg.Pool,
  options: { timeoutMs: number },
): Promise<DatabaseProbe> {
  const where = serverOf(pool.options.connectionString)
  const client = new pg.Client({
    ...pool.options,
    connectionTimeoutMillis: options.timeoutMs,
    query_timeout: options.timeoutMs,
  })
  // A connection dropped after the probe must not crash the process.
  client.on('error', () => undefined)
  const started = performance.now()
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ProbeTimeout()), options.timeoutMs)
  })
  try {
    await Promise.race([
      (async () => {
        await client.connect()
        await client.query('select 1')
      })(),
      deadline,
    ])
    return { reachable: true, latencyMs: performance.now() - started, error: null }
  } catch (err) {
    return { reachable: false, latencyMs: null, error: describeFailure(err, where, options) }
  } finally {
    clearTimeout(timer)
    void client.end().catch(() => undefined)
  }
}

// --- implementation ---

class ProbeTimeout extends Error {}

/** `host:port` of a connection string, without its user or password. */
function serverOf(url: string | undefined): string {
  if (!url) return 'the configured server'
  try {
    const parsed = new URL(url)
    return `${parsed.hostname || 'localhost'}:${parsed.port || '5432'}`
  } catch {
    return 'the configured server'
  }
}

function describeFailure(err: unknown, where: string, options: { timeoutMs: number }): string {
  const seconds = `${options.timeoutMs / 1000} s`
  if (err instanceof ProbeTimeout || /timeout/i.test(err instanceof Error ? err.message : '')) {
    return `Postgres at ${where} did not answer within ${seconds}.`
  }
  const code = (err as { code?: unknown }).code
  switch (code) {
    case 'ECONNREFUSED':
      return `Postgres at ${where} refused the connection: is the server running?`
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `Postgres at ${where}: the host name was not found.`
    case 'ECONNRESET':
    case 'EPIPE':
      return `Postgres at ${where} closed the connection.`
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `Postgres at ${where} cannot be reached from this machine.`
    case '28P01':
    case '28000':
      return `Postgres at ${where} refused the login: check the user and password in DATABASE_URL.`
    case '3D000':
      return `Postgres at ${where} has no such database: check the database name in DATABASE_URL.`
    case '57P03':
      return `Postgres at ${where} is starting up or shutting down.`
    default: {
      const info = postgresError(err)
      return scrubString(
        `Postgres at ${where} failed: ${info.code ? `${info.code} ` : ''}${info.message}`,
      )
    }
  }
}
