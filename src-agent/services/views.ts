/**
 * What the screens (and an operator) read about a tenant's connections: the connections with
 * their streams and record counts, runs, rejected records and the audit trail. Read-only; every
 * query runs inside the tenant's transaction, so row-level security scopes it.
 */
import { and, desc, eq, gte, isNull, lte, sql } from 'drizzle-orm'
import type { Db, DbHandle } from '../../db/client.js'
import { toDbError } from '../../db/errors.js'
import { shippedMigrationCount } from '../../db/migrate.js'
import {
  accounts,
  activities,
  auditLog,
  connectors,
  people,
  quarantine,
  streamState,
  syncRuns,
} from '../../db/schema/index.js'
import { withTenant } from '../../db/tenant.js'
import { AppError } from '../../shared/errors.js'
import type { EntityType, SyncMode } from '../../shared/schemas.js'
import type { ConnectorRegistry } from '../connectors/registry.js'
import { streamsOf } from '../connectors/streams.js'
import { needsReauth } from '../pipeline/connection.js'
import { requireTenant } from '../pipeline/tenants.js'

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null)

export interface ConnectionView {
  connectorType: string
  connectionId: string
  status: 'disconnected' | 'pending_auth' | 'connected' | 'syncing' | 'error'
  config: Record<string, unknown>
  lastSyncAt: string | null
  lastSyncError: string | null
  createdAt: string
  streams: Array<{
    stream: string
    partition: string
    status: string
    lastSyncAt: string | null
    lastError: string | null
  }>
  records: Record<EntityType, number>
  /** Live records per stream (stream '': older records no stream has read again yet). */
  recordsByStream: Array<{ stream: string; records: number }>
  /** The source refused the stored credentials: Reconnect. */
  needsReauth: boolean
}

/**
 * The tenant's connections, each with every stream its connector declares (a stream not yet read
 * shows as 'never'), and how many live records it has stored per entity type.
 */
export async function listConnections(
  db: Db,
  tenantId: string,
  registry: ConnectorRegistry,
): Promise<ConnectionView[]> {
  return guard('listing connections', () =>
    withTenant(db, tenantId, async (tx) => {
      await requireTenant(tx, tenantId)
      const rows = await tx
        .select()
        .from(connectors)
        .where(eq(connectors.tenantId, tenantId))
        .orderBy(connectors.type)
      const states = await tx.select().from(streamState).where(eq(streamState.tenantId, tenantId))
      const counts = new Map<string, Record<EntityType, number>>()
      /** Per source: [entity type, stream or null, live records]. */
      const perStream = new Map<string, Array<[EntityType, string | null, number]>>()
      for (const [entityType, table] of [
        ['person', people],
        ['account', accounts],
        ['activity', activities],
      ] as const) {
        const grouped = await tx
          .select({ source: table.source, stream: table.stream, n: sql<string>`count(*)` })
          .from(table)
          .where(and(eq(table.tenantId, tenantId), isNull(table.deletedAt)))
          .groupBy(table.source, table.stream)
        for (const { source, stream, n } of grouped) {
          const entry = counts.get(source) ?? { person: 0, account: 0, activity: 0 }
          entry[entityType] += Number(n)
          counts.set(source, entry)
          const list = perStream.get(source) ?? []
          list.push([entityType, stream, Number(n)])
          perStream.set(source, list)
        }
      }
      return rows.map((row) => {
        const own = states.filter((s) => s.connectorId === row.id)
        const declared = registry.has(row.type) ? streamsOf(registry.get(row.type)) : []
        const streams = own.map((s) => ({
          stream: s.stream,
          partition: s.partition,
          status: s.lastStatus ?? 'never',
          lastSyncAt: iso(s.lastSyncAt),
          lastError: s.lastError,
        }))
        for (const stream of declared) {
          if (!own.some((s) => s.stream === stream.id)) {
            streams.push({
              stream: stream.id,
              partition: '',
              status: 'never',
              lastSyncAt: null,
              lastError: null,
            })
          }
        }
        return {
          connectorType: row.type,
          connectionId: row.id,
          status: row.status,
          config: row.config,
          lastSyncAt: iso(row.lastSyncAt),
          lastSyncError: row.lastSyncError,
          createdAt: row.createdAt.toISOString(),
          streams,
          records: counts.get(row.type) ?? { person: 0, account: 0, activity: 0 },
          recordsByStream: countByStream(declared, perStream.get(row.type) ?? []),
          needsReauth: needsReauth(row),
        }
      })
    }),
  )
}

/**
 * Live records per declared stream. A row no stream has written yet (stored before streams were
 * recorded) belongs to its entity type's stream when only one stream produces that type;
 * otherwise it counts under stream ''. A stream the connector no longer declares keeps its count.
 */
function countByStream(
  declared: ReadonlyArray<{ id: string; entityType: EntityType }>,
  grouped: ReadonlyArray<[EntityType, string | null, number]>,
): Array<{ stream: string; records: number }> {
  const byStream = new Map<string, number>(declared.map((s) => [s.id, 0]))
  for (const [entityType, stream, n] of grouped) {
    const producers = declared.filter((s) => s.entityType === entityType)
    const key = stream ?? (producers.length === 1 ? producers[0]!.id : '')
    byStream.set(key, (byStream.get(key) ?? 0) + n)
  }
  return [...byStream].map(([stream, records]) => ({ stream, records }))
}

/** The connection's latest runs, newest first. */
export async function listRuns(
  db: Db,
  input: { tenantId: string; connectorType: string; limit: number },
): Promise<
  Array<{
    runId: string
    connectorType: string
    stream: string | null
    partition: string | null
    mode: SyncMode
    status: string
    startedAt: string
    finishedAt: string | null
    pages: number
    created: number
    updated: number
    deleted: number
    errors: number
    error: string | null
  }>
> {
  return guard('listing sync runs', () =>
    withTenant(db, input.tenantId, async (tx) => {
      const rows = await tx
        .select({ run: syncRuns })
        .from(syncRuns)
        .innerJoin(connectors, eq(connectors.id, syncRuns.connectorId))
        .where(and(eq(syncRuns.tenantId, input.tenantId), eq(connectors.type, input.connectorType)))
        .orderBy(desc(syncRuns.startedAt))
        .limit(input.limit)
      return rows.map(({ run }) => ({
        runId: run.id,
        connectorType: input.connectorType,
        stream: run.stream,
        partition: run.partition,
        mode: run.mode,
        status: run.status,
        startedAt: run.startedAt.toISOString(),
        finishedAt: iso(run.finishedAt),
        pages: run.pages,
        created: run.created,
        updated: run.updated,
        deleted: run.deleted,
        errors: run.errors,
        error: run.error,
      }))
    }),
  )
}

/** Rejected records of a connection, newest first; `externalId` narrows to one source record. */
export async function listQuarantine(
  db: Db,
  input: {
    tenantId: string
    connectorType: string
    externalId?: string | undefined
    limit: number
  },
): Promise<
  Array<{
    id: string
    connectorType: string
    runId: string | null
    entityType: EntityType
    externalId: string | null
    reason: string
    rawPayload: Record<string, unknown>
    createdAt: string
  }>
> {
  return guard('listing rejected records', () =>
    withTenant(db, input.tenantId, async (tx) => {
      const rows = await tx
        .select()
        .from(quarantine)
        .where(
          and(
            eq(quarantine.tenantId, input.tenantId),
            eq(quarantine.connector, input.connectorType),
            input.externalId !== undefined
              ? eq(quarantine.externalId, input.externalId)
              : undefined,
          ),
        )
        .orderBy(desc(quarantine.createdAt))
        .limit(input.limit)
      return rows.map((row) => ({
        id: row.id,
        connectorType: row.connector,
        runId: row.syncRunId,
        entityType: row.entityType,
        externalId: row.externalId,
        reason: row.reason,
        rawPayload: row.rawPayload,
        createdAt: row.createdAt.toISOString(),
      }))
    }),
  )
}

/**
 * The tenant's audit trail, newest first (before/after were redacted when written), narrowed
 * by whichever filters are given: the exact action, resource and user, and a time window
 * (`from` and `to` included).
 */
export async function listAudit(
  db: Db,
  input: {
    tenantId: string
    action?: string | undefined
    resource?: string | undefined
    userId?: string | undefined
    from?: string | undefined
    to?: string | undefined
    limit: number
  },
): Promise<
  Array<{
    id: string
    userId: string
    action: string
    resource: string
    resourceId: string | null
    changes: { before?: unknown; after?: unknown }
    createdAt: string
  }>
> {
  return guard('listing the audit log', () =>
    withTenant(db, input.tenantId, async (tx) => {
      const rows = await tx
        .select()
        .from(auditLog)
        .where(
          and(
            eq(auditLog.tenantId, input.tenantId),
            input.action !== undefined ? eq(auditLog.action, input.action) : undefined,
            input.resource !== undefined ? eq(auditLog.resource, input.resource) : undefined,
            input.userId !== undefined ? eq(auditLog.userId, input.userId) : undefined,
            input.from !== undefined ? gte(auditLog.createdAt, new Date(input.from)) : undefined,
            input.to !== undefined ? lte(auditLog.createdAt, new Date(input.to)) : undefined,
          ),
        )
        .orderBy(desc(auditLog.createdAt), desc(auditLog.id))
        .limit(input.limit)
      return rows.map((row) => ({
        id: row.id,
        userId: row.userId,
        action: row.action,
        resource: row.resource,
        resourceId: row.resourceId,
        changes: row.changes,
        createdAt: row.createdAt.toISOString(),
      }))
    }),
  )
}

/** Migrations the database has applied, and how many this build ships (current when equal). */
export async function schemaVersion(
  handle: DbHandle,
): Promise<{ applied: number; shipped: number }> {
  return guard('reading the database schema version', async () => {
    const res = await handle.pool.query<{ n: number }>('select gtm_schema_version() as n')
    return { applied: Number(res.rows[0]?.n ?? 0), shipped: shippedMigrationCount() }
  })
}

/** Runs a read; a database failure becomes a DbError that says what was being read. */
export async function guard<T>(doing: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    // An unknown tenant or connector says so itself; only database failures are wrapped.
    if (err instanceof AppError) throw err
    throw toDbError(err, doing)
  }
}
