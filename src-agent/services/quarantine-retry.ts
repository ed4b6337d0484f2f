/**
 * Trying rejected records again after an admin fixed what refused them (usually a mapping): each
 * record is rebuilt from its quarantined payload and goes through the current mappings and the
 * same prepare and persist steps as a sync page, in one tenant transaction with its audit row.
 */
import { and, eq, inArray, isNull, sql, type SQL } from 'drizzle-orm'
import type { Db, Tx } from '../../db/client.js'
import { toDbError } from '../../db/errors.js'
import { accounts, activities, people, quarantine, syncRuns } from '../../db/schema/index.js'
import { withTenant } from '../../db/tenant.js'
import { AppError } from '../../shared/errors.js'
import type { EntityType, FieldMapping, SourceRecord } from '../../shared/schemas.js'
import { recordAudit } from '../audit/audit.js'
import type { AnyConnector, StreamDefinition } from '../connectors/interface.js'
import type { ConnectorRegistry } from '../connectors/registry.js'
import { streamsOf } from '../connectors/streams.js'
import { findConnection } from '../pipeline/connection.js'
import { persistRecords, persistSideTables } from '../pipeline/persist.js'
import { prepareRecords } from '../pipeline/prepare.js'
import { streamMappings } from '../pipeline/stream-state.js'
import { requireTenant } from '../pipeline/tenants.js'

export interface QuarantineRetryResult {
  /** Rejected records looked at (a record rejected by several syncs is one). */
  retried: number
  /** Stored now (or already stored from a newer read): their quarantine rows are gone. */
  accepted: number
  /** Still refused: each keeps one quarantine row, with the reason it fails for now. */
  stillRejected: number
}

/**
 * Retries the connection's quarantined records (all, or the rows `ids` names). A record whose
 * external id was never known (a deletion without an id, a record of the wrong type) cannot be
 * rebuilt safely and stays as it is. A record stored again since it was rejected (a newer read
 * of it passed, or the source deleted it) is not overwritten with the older payload: its
 * quarantine rows are simply removed. Audited once per call, as `userId`.
 */
export async function retryQuarantine(
  deps: { db: Db; registry: ConnectorRegistry },
  input: {
    tenantId: string
    connectorType: string
    ids?: readonly string[] | undefined
    userId: string
  },
): Promise<QuarantineRetryResult> {
  const { tenantId, connectorType } = input
  const connector = deps.registry.get(connectorType)
  try {
    return await withTenant(deps.db, tenantId, async (tx) => {
      await requireTenant(tx, tenantId)
      const connection = await findConnection(tx, tenantId, connectorType)
      if (!connection) {
        throw new AppError(
          'connector_not_connected',
          `${connector.name} was never connected for tenant "${tenantId}", so it has no rejected records.`,
        )
      }
      const scope = and(
        eq(quarantine.tenantId, tenantId),
        eq(quarantine.connector, connectorType),
        input.ids ? inArray(quarantine.id, [...input.ids]) : undefined,
      )
      const [unknownIds] = await tx
        .select({ n: sql<string>`count(*)` })
        .from(quarantine)
        .where(and(scope, isNull(quarantine.externalId)))
      const totals = { retried: 0, accepted: 0, stillRejected: 0, created: 0, updated: 0 }
      totals.retried = totals.stillRejected = Number(unknownIds?.n ?? 0)
      const context: RetryContext = {
        tx,
        tenantId,
        connector,
        connectionId: connection.id,
        mappings: new Map(),
      }
      let after: Key | undefined
      for (;;) {
        const chunk = await nextChunk(tx, scope, after)
        if (chunk.length === 0) break
        after = chunk.at(-1)
        const counts = await retryChunk(context, scope, chunk)
        for (const key of Object.keys(totals) as Array<keyof typeof totals>) {
          totals[key] += counts[key]
        }
      }
      await recordAudit(tx, {
        tenantId,
        userId: input.userId,
        action: 'quarantine.retry',
        resource: 'connector',
        resourceId: connection.id,
        metadata: { connectorType, rows: input.ids ? input.ids.length : 'all', ...totals },
      })
      const { retried, accepted, stillRejected } = totals
      return { retried, accepted, stillRejected }
    })
  } catch (err) {
    if (err instanceof AppError) throw err
    throw toDbError(err, `retrying the rejected ${connectorType} records of tenant "${tenantId}"`)
  }
}

// --- implementation ---

/** Records per round: their newest quarantine rows are read, claimed and written together. */
const CHUNK = 500

interface Key {
  entityType: EntityType
  externalId: string
}

interface Rejected extends Key {
  syncRunId: string | null
  rawPayload: Record<string, unknown>
  createdAt: Date
}

interface RetryContext {
  tx: Tx
  tenantId: string
  connector: AnyConnector
  connectionId: string
  /** The current mappings per stream, read once per call. */
  mappings: Map<string, Map<EntityType, FieldMapping[]>>
}

/** The newest row of each of the next CHUNK records (by type and external id) after `after`. */
async function nextChunk(
  tx: Tx,
  scope: SQL | undefined,
  after: Key | undefined,
): Promise<Rejected[]> {
  const rows = await tx
    .selectDistinctOn([quarantine.entityType, quarantine.externalId], {
      entityType: quarantine.entityType,
      externalId: quarantine.externalId,
      syncRunId: quarantine.syncRunId,
      rawPayload: quarantine.rawPayload,
      createdAt: quarantine.createdAt,
    })
    .from(quarantine)
    .where(
      and(
        scope,
        sql`${quarantine.externalId} is not null`,
        after
          ? sql`(${quarantine.entityType}, ${quarantine.externalId}) > (${after.entityType}, ${after.externalId})`
          : undefined,
      ),
    )
    .orderBy(
      quarantine.entityType,
      quarantine.externalId,
      sql`${quarantine.createdAt} desc`,
      sql`${quarantine.id} desc`,
    )
    .limit(CHUNK)
  return rows.map((row) => ({ ...row, externalId: row.externalId! }))
}

/**
 * One chunk: claims its quarantine rows (deleting them: a concurrent retry finds them gone and
 * leaves those records alone), skips the records stored since, and writes the rest as a sync
 * page would, rejects quarantined again with their new reason.
 */
async function retryChunk(
  context: RetryContext,
  scope: SQL | undefined,
  chunk: Rejected[],
): Promise<{
  retried: number
  accepted: number
  stillRejected: number
  created: number
  updated: number
}> {
  const { tx, tenantId, connector } = context
  const claimed = await tx
    .delete(quarantine)
    .where(
      and(
        scope,
        sql`(${quarantine.entityType}, ${quarantine.externalId}) in (select * from unnest(${sql.param(chunk.map((r) => r.entityType))}::text[], ${sql.param(chunk.map((r) => r.externalId))}::text[]))`,
      ),
    )
    .returning({ entityType: quarantine.entityType, externalId: quarantine.externalId })
  const claimedKeys = new Set(claimed.map((k) => keyOf({ ...k, externalId: k.externalId! })))
  const mine = chunk.filter((r) => claimedKeys.has(keyOf(r)))
  const storedSince = await storedAfterRejection(context, mine)
  const toWrite = mine.filter((r) => !storedSince.has(keyOf(r)))
  const counts = {
    retried: mine.length,
    accepted: storedSince.size,
    stillRejected: 0,
    created: 0,
    updated: 0,
  }

  // Each record with the mappings of the stream that read it, so the outcome is the sync's.
  const groups = new Map<string | null, Rejected[]>()
  for (const record of toWrite) {
    const group = groups.get(record.syncRunId) ?? []
    group.push(record)
    groups.set(record.syncRunId, group)
  }
  const streams = await runStreams(tx, [...groups.keys()])
  for (const [runId, group] of groups) {
    const stream = streamOf(connector, streams.get(runId ?? ''), group[0]!.entityType)
    const mappings = await mappingsOf(context, stream)
    const records: SourceRecord[] = group.map((r) => ({
      entityType: r.entityType,
      data: r.rawPayload,
    }))
    const batches = prepareRecords(records, (e) => mappings.get(e) ?? [])
    const written = await persistRecords(tx, {
      tenantId,
      source: connector.id,
      runId,
      stream: stream.id,
      batches,
    })
    await persistSideTables(tx, connector, { tenantId, records, batches })
    counts.created += written.created
    counts.updated += written.updated
    counts.stillRejected += written.errors
    counts.accepted += group.length - written.errors
  }
  return counts
}

/** Records whose canonical row changed after they were rejected: a newer read already stored them. */
async function storedAfterRejection(
  context: RetryContext,
  records: readonly Rejected[],
): Promise<Set<string>> {
  const found = new Set<string>()
  for (const [entityType, table] of [
    ['person', people],
    ['account', accounts],
    ['activity', activities],
  ] as const) {
    const ofType = records.filter((r) => r.entityType === entityType)
    if (ofType.length === 0) continue
    const rows = await context.tx
      .select({ externalId: table.externalId, updatedAt: table.updatedAt })
      .from(table)
      .where(
        and(
          eq(table.tenantId, context.tenantId),
          eq(table.source, context.connector.id),
          inArray(
            table.externalId,
            ofType.map((r) => r.externalId),
          ),
        ),
      )
    const rejectedAt = new Map(ofType.map((r) => [r.externalId, r.createdAt]))
    for (const row of rows) {
      const at = rejectedAt.get(row.externalId)
      if (at && row.updatedAt > at) found.add(keyOf({ entityType, externalId: row.externalId }))
    }
  }
  return found
}

/** The stream each run read. */
async function runStreams(
  tx: Tx,
  runIds: ReadonlyArray<string | null>,
): Promise<Map<string, string | null>> {
  const ids = runIds.filter((id): id is string => id !== null)
  if (ids.length === 0) return new Map()
  const rows = await tx
    .select({ id: syncRuns.id, stream: syncRuns.stream })
    .from(syncRuns)
    .where(inArray(syncRuns.id, ids))
  return new Map(rows.map((row) => [row.id, row.stream]))
}

/**
 * The stream a rejected record came from: its run's, or (a webhook event's record, a run since
 * removed) the connector's first stream of its entity type, as the webhook inbox maps them.
 */
function streamOf(
  connector: AnyConnector,
  streamId: string | null | undefined,
  entityType: EntityType,
): StreamDefinition {
  const streams = streamsOf(connector)
  return (
    streams.find((s) => s.id === streamId) ??
    streams.find((s) => s.entityType === entityType) ??
    streams[0]!
  )
}

async function mappingsOf(
  context: RetryContext,
  stream: StreamDefinition,
): Promise<Map<EntityType, FieldMapping[]>> {
  let mappings = context.mappings.get(stream.id)
  if (!mappings) {
    mappings = await streamMappings(context.tx, context.connector, context.connectionId, stream)
    context.mappings.set(stream.id, mappings)
  }
  return mappings
}

function keyOf(key: Key): string {
  return `${key.entityType}\u0000${key.externalId}`
}
