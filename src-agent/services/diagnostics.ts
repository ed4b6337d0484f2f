/**
 * The Diagnostics screen's local health check: the database, Temporal, the encryption key,
 * every connection of the tenant, and the failures of the last 7 days. It always answers, within
 * a few seconds: each part has a deadline, and a part that cannot be checked says why in words
 * while the others are still filled. Nothing in it carries a secret.
 */
import { and, eq, gte, inArray, sql } from 'drizzle-orm'
import type { DbHandle } from '../../db/client.js'
import { probeDatabase } from '../../db/probe.js'
import { withDeadline } from '../../shared/deadline.js'
import { connectors, syncRuns } from '../../db/schema/index.js'
import { withTenant } from '../../db/tenant.js'
import { describeError } from '../../shared/errors.js'
import { scrubString } from '../../shared/redact.js'
import type { AuthMethod, ConnectorHealthStatus, ConnectorStatus } from '../../shared/schemas.js'
import type { ConnectorRegistry } from '../connectors/registry.js'
import type { Logger } from '../logging/logger.js'
import { needsReauth, type ConnectorRow } from '../pipeline/connection.js'
import type { Keyring } from '../secrets/crypto.js'
import { health } from './connections.js'
import { schemaVersion } from './views.js'
import { errorKind, nextStep, type ErrorKind } from './failures.js'

/** What Temporal said, as the temporal layer's probe reports it (passed in: see rpc/handlers). */
export interface TemporalDiagnostics {
  reachable: boolean
  address: string
  namespace: string
  latencyMs: number | null
  /** The tenant's connection schedules Temporal holds; null when it could not be asked. */
  schedules: number | null
  error: string | null
}

export interface DiagnosticsDeps {
  handle: DbHandle
  registry: ConnectorRegistry
  keyring: Keyring
  log: Logger
  worker: () => { state: 'starting' | 'running' | 'stopped' | 'off'; error: string | null }
  /** Asks Temporal, with its own deadline; `connectorTypes` are the connections to look for. */
  temporal: (input: { tenantId: string; connectorTypes?: string[] }) => Promise<TemporalDiagnostics>
  now?: () => Date
}

export interface Diagnostics {
  checkedAt: string
  database: {
    reachable: boolean
    latencyMs: number | null
    migrations: { applied: number; shipped: number } | null
    tablesWithoutRls: string[]
    error: string | null
  }
  temporal: TemporalDiagnostics & {
    worker: 'starting' | 'running' | 'stopped' | 'off'
    workerError: string | null
  }
  encryptionKey: { present: boolean; keyId: string | null }
  connections: Array<{
    connectorType: string
    status: ConnectorStatus
    health: {
      status: ConnectorHealthStatus['status']
      latencyMs: number
      checkedAt: string
      message: string
    } | null
    quota: { used: number; limit: number } | null
    tokenExpiresAt: string | null
    credential: string
    error: string | null
  }>
  recentErrors: Array<{
    kind: ErrorKind
    code: string
    connectorType: string | null
    count: number
    lastAt: string
    message: string
    nextStep: string
  }>
}

/** How long each part may take before it is reported as not answering. */
export const DIAGNOSTICS_DEADLINES = {
  databaseMs: 2_500,
  queryMs: 5_000,
  connectionHealthMs: 8_000,
} as const

/** Runs every check of the tenant's local setup; never throws for a part that is down. */
export async function runDiagnostics(
  deps: DiagnosticsDeps,
  input: { tenantId: string },
): Promise<Diagnostics> {
  const checkedAt = (deps.now?.() ?? new Date()).toISOString()
  const worker = deps.worker()
  const encryptionKey = { present: true, keyId: deps.keyring.currentKeyId }
  const probe = await probeDatabase(deps.handle.pool, {
    timeoutMs: DIAGNOSTICS_DEADLINES.databaseMs,
  })
  if (!probe.reachable) {
    const temporal = await askTemporal(deps, { tenantId: input.tenantId })
    return {
      checkedAt,
      database: { ...probe, migrations: null, tablesWithoutRls: [] },
      temporal: { ...temporal, worker: worker.state, workerError: worker.error },
      encryptionKey,
      connections: [],
      recentErrors: [],
    }
  }
  const problems: string[] = []
  const part = async <T>(doing: string, fn: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await withDeadline(
        fn(),
        DIAGNOSTICS_DEADLINES.queryMs,
        `did not answer within ${DIAGNOSTICS_DEADLINES.queryMs / 1000} s`,
      )
    } catch (err) {
      problems.push(`Could not ${doing}: ${scrubString(describeError(err))}`)
      return undefined
    }
  }
  const rows = await part('list the connections', () => connectionRows(deps.handle, input.tenantId))
  const [migrations, tablesWithoutRls, recentErrors, temporal, connections] = await Promise.all([
    part('read the schema version', () => schemaVersion(deps.handle)),
    part('check row-level security', () => unprotectedTables(deps.handle)),
    part('read the recent failures', () => recentFailures(deps, input.tenantId)),
    askTemporal(deps, {
      tenantId: input.tenantId,
      // A disconnected connection's schedule is kept (paused), so it counts too.
      ...(rows ? { connectorTypes: rows.map((r) => r.type) } : {}),
    }),
    Promise.all((rows ?? []).map((row) => checkConnection(deps, input.tenantId, row))),
  ])
  return {
    checkedAt,
    database: {
      reachable: true,
      latencyMs: probe.latencyMs,
      migrations: migrations ?? null,
      tablesWithoutRls: tablesWithoutRls ?? [],
      error: problems.length === 0 ? null : problems.join(' '),
    },
    temporal: { ...temporal, worker: worker.state, workerError: worker.error },
    encryptionKey,
    connections,
    recentErrors: recentErrors ?? [],
  }
}

// --- implementation ---

async function askTemporal(
  deps: DiagnosticsDeps,
  input: { tenantId: string; connectorTypes?: string[] },
): Promise<TemporalDiagnostics> {
  try {
    return await deps.temporal(input)
  } catch (err) {
    return {
      reachable: false,
      address: 'unknown',
      namespace: 'unknown',
      latencyMs: null,
      schedules: null,
      error: scrubString(describeError(err)),
    }
  }
}

function connectionRows(handle: DbHandle, tenantId: string): Promise<ConnectorRow[]> {
  return withTenant(handle.db, tenantId, (tx) =>
    tx.select().from(connectors).where(eq(connectors.tenantId, tenantId)).orderBy(connectors.type),
  )
}

/** A connection's state and a live health check of its source, within its deadline. */
async function checkConnection(
  deps: DiagnosticsDeps,
  tenantId: string,
  row: ConnectorRow,
): Promise<Diagnostics['connections'][number]> {
  const base = {
    connectorType: row.type,
    status: row.status,
    health: null,
    quota: null,
    tokenExpiresAt: null,
    credential: deps.registry.has(row.type)
      ? CREDENTIALS[deps.registry.get(row.type).authMethod]
      : 'Unknown',
  }
  const name = deps.registry.has(row.type) ? deps.registry.get(row.type).name : row.type
  const stored = needsReauth(row)
    ? `${name} refused the stored credentials: reconnect it.`
    : row.lastSyncError === null
      ? null
      : scrubString(row.lastSyncError)
  if (row.status === 'disconnected') {
    return { ...base, error: `${name} is disconnected.` }
  }
  if (!deps.registry.has(row.type)) {
    return {
      ...base,
      error: `This agent has no ${row.type} connector: its connection cannot be checked.`,
    }
  }
  try {
    const status = await withDeadline(
      health(
        { db: deps.handle.db, registry: deps.registry, keyring: deps.keyring, log: deps.log },
        {
          tenantId,
          connectorType: row.type,
        },
      ),
      DIAGNOSTICS_DEADLINES.connectionHealthMs,
      `${name} did not answer the health check within ${DIAGNOSTICS_DEADLINES.connectionHealthMs / 1000} s`,
    )
    return {
      ...base,
      health: {
        status: status.status,
        latencyMs: status.latencyMs,
        checkedAt: status.checkedAt.toISOString(),
        message: scrubString(status.message),
      },
      quota: quotaOf(status.details),
      tokenExpiresAt: tokenExpiryOf(status.details),
      error: status.status === 'down' ? scrubString(status.message) : stored,
    }
  } catch (err) {
    return { ...base, error: scrubString(describeError(err)) }
  }
}

/** What each way of signing in keeps, and whether it runs out. */
const CREDENTIALS: Record<AuthMethod, string> = {
  api_key: 'API key: valid until revoked at the source',
  oauth2: 'Refresh token: access renewed as needed, valid until revoked',
  msal: 'App secret: access tokens renewed as needed',
  none: 'None needed',
}

/** API calls used of the vendor's allowance, when the connector reports it (Salesforce's /limits). */
function quotaOf(
  details: Record<string, unknown> | undefined,
): { used: number; limit: number } | null {
  const usage = details?.['apiUsage']
  if (typeof usage !== 'object' || usage === null) return null
  const { used, max, limit } = usage as Record<string, unknown>
  const allowance = typeof max === 'number' ? max : limit
  return typeof used === 'number' && typeof allowance === 'number'
    ? { used, limit: allowance }
    : null
}

function tokenExpiryOf(details: Record<string, unknown> | undefined): string | null {
  const value = details?.['tokenExpiresAt']
  const date =
    value instanceof Date ? value : typeof value === 'string' ? new Date(value) : undefined
  return date && !Number.isNaN(date.getTime()) ? date.toISOString() : null
}

/**
 * Tenant tables (any table with a tenant_id column, outside the system schemas) whose row-level
 * security is not both enabled and forced. pg_class and pg_attribute are readable by every role,
 * the agent's included, whoever owns the tables.
 */
async function unprotectedTables(handle: DbHandle): Promise<string[]> {
  const res = await handle.pool.query<{ name: string }>(`
    select case when n.nspname = 'public' then c.relname else n.nspname || '.' || c.relname end as name
      from pg_class c
      join pg_namespace n on n.oid = c.relnamespace
      join pg_attribute a on a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped
     where c.relkind in ('r', 'p')
       and n.nspname not in ('information_schema', 'drizzle')
       and n.nspname not like 'pg\\_%'
       and not (c.relrowsecurity and c.relforcerowsecurity)
     order by 1`)
  return res.rows.map((r) => r.name)
}

/** The tenant's failed and paused runs of the last 7 days, by connector and code, newest first. */
async function recentFailures(
  deps: DiagnosticsDeps,
  tenantId: string,
): Promise<Diagnostics['recentErrors']> {
  const rows = await withTenant(deps.handle.db, tenantId, (tx) =>
    tx
      .select({
        code: sql<string>`coalesce(${syncRuns.errorCode}, 'unknown')`,
        connectorType: connectors.type,
        count: sql<number>`count(*)::int`,
        lastAt: sql<string>`max(coalesce(${syncRuns.finishedAt}, ${syncRuns.startedAt}))`,
        message: sql<
          string | null
        >`(array_agg(${syncRuns.error} order by ${syncRuns.startedAt} desc))[1]`,
      })
      .from(syncRuns)
      .innerJoin(connectors, eq(connectors.id, syncRuns.connectorId))
      .where(
        and(
          eq(syncRuns.tenantId, tenantId),
          inArray(syncRuns.status, ['failed', 'paused']),
          gte(syncRuns.startedAt, sql`now() - interval '7 days'`),
          // A cancel is somebody's choice, not a failure.
          sql`coalesce(${syncRuns.errorCode}, '') <> 'sync_cancelled'`,
        ),
      )
      .groupBy(sql`1`, connectors.type),
  )
  return rows
    .map((row) => {
      const vendor = deps.registry.has(row.connectorType)
        ? deps.registry.get(row.connectorType).name
        : row.connectorType
      const message = scrubString(row.message ?? 'No message was recorded.')
      return {
        kind: errorKind(row.code),
        code: row.code,
        connectorType: row.connectorType,
        count: row.count,
        lastAt: new Date(row.lastAt).toISOString(),
        message,
        nextStep: nextStep({ code: row.code, vendor, message }),
      }
    })
    .sort((a, b) => b.lastAt.localeCompare(a.lastAt))
}
