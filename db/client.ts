import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres'
import pg from 'pg'
import * as schema from './schema/index.js'

/** The role the agent works as: it owns nothing, so row-level security always applies. */
export const AGENT_ROLE = 'gtm_agent'

/**
 * How soon Postgres gives up on a client whose machine is gone without a word (power lost, network
 * cut: no FIN, no reset). It probes a silent connection after 30 s, then every 10 s, and drops it
 * after 3 unanswered probes, or once data it sent has gone unacknowledged for 60 s. The session's
 * locks go with it, so a connection's sync lock held by a vanished worker is free for the other
 * workers after about a minute, not after the system default of over two hours. On a Unix
 * socket they do nothing; a server whose system lacks one (`tcp_user_timeout` on macOS and
 * Windows) writes a line saying so to its log and carries on.
 */
export const SERVER_KEEPALIVE = {
  tcp_keepalives_idle: 30,
  tcp_keepalives_interval: 10,
  tcp_keepalives_count: 3,
  tcp_user_timeout: 60_000,
} as const

/** The same from our side: a silent connection is probed after 30 s (then as the system says). */
const CLIENT_KEEPALIVE_DELAY_MS = 30_000

export type Schema = typeof schema
export type Db = NodePgDatabase<Schema>
/** A transaction handle, as passed to withTenant's callback. */
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0]

export interface DbHandle {
  db: Db
  pool: pg.Pool
  close(): Promise<void>
}

export interface CreateDbOptions {
  /** Connect as the URL's own user (the migrator) instead of switching to the agent role. */
  asOwner?: boolean
  max?: number
  /** Sees every statement's SQL text (never its parameters): for diagnostics and tests. */
  onQuery?: (sqlText: string) => void
  /** The name its sessions show in pg_stat_activity (a connection URL's own one wins). */
  applicationName?: string
}

/** A pooled connection to Postgres. Every connection runs as gtm_agent unless `asOwner`. */
export function createDb(url: string, options: CreateDbOptions = {}): DbHandle {
  const pool = new pg.Pool({
    connectionString: url,
    max: options.max ?? 5,
    ...(options.applicationName ? { application_name: options.applicationName } : {}),
    // Set in the startup packet: the role applies before any statement can run.
    options: [
      ...(options.asOwner ? [] : [`role=${AGENT_ROLE}`]),
      ...Object.entries(SERVER_KEEPALIVE).map(([name, value]) => `${name}=${value}`),
    ]
      .map((setting) => `-c ${setting}`)
      .join(' '),
    keepAlive: true,
    keepAliveInitialDelayMillis: CLIENT_KEEPALIVE_DELAY_MS,
  })
  // An idle client losing its connection must not crash the process; the next query reconnects.
  pool.on('error', () => undefined)
  // Nor may a client in use (its backend terminated, say, mid-transaction): the statement or
  // transaction it ran fails with the error itself, and the pool drops the broken client.
  pool.on('connect', (client) => client.on('error', () => undefined))
  const onQuery = options.onQuery
  const db = drizzle({
    client: pool,
    schema,
    ...(onQuery ? { logger: { logQuery: (query: string) => onQuery(query) } } : {}),
  })
  return { db, pool, close: () => pool.end() }
}
