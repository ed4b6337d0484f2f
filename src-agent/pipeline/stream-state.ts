/**
 * Where each stream of a connection stands (stream_state): its committed cursor per partition,
 * the run that last read it, and the mappings a run of it uses. Everything here runs inside the
 * caller's tenant transaction.
 */
import { and, asc, eq, isNull, notInArray, or, sql } from 'drizzle-orm'
import type { Tx } from '../../db/client.js'
import { connectors, fieldMappings, streamState } from '../../db/schema/index.js'
import { entityTypes, type EntityType, type FieldMapping } from '../../shared/schemas.js'
import type { AnyConnector, StreamDefinition } from '../connectors/interface.js'
import { DEFAULT_STREAM, defaultMappings, streamsOf } from '../connectors/streams.js'
import { mergeMappings, validateMappings } from './mapping.js'

export interface StreamKey {
  tenantId: string
  connectorId: string
  stream: string
}

/**
 * Moves the one cursor a connection kept before streams into stream_state, once: the connector's
 * upgradeCursor splits it per stream (a connector without streams keeps it as its one stream's).
 * Streams that already have a position keep it.
 */
export async function upgradeLegacyCursor(
  tx: Tx,
  connector: AnyConnector,
  row: { id: string; tenantId: string; cursor: string | null },
): Promise<void> {
  if (row.cursor === null) return
  const split = connector.upgradeCursor
    ? connector.upgradeCursor(row.cursor)
    : { [streamsOf(connector)[0]?.id ?? DEFAULT_STREAM]: row.cursor }
  const known = new Set(streamsOf(connector).map((s) => s.id))
  const values = Object.entries(split)
    .filter(([stream, cursor]) => known.has(stream) && cursor !== null)
    .map(([stream, cursor]) => ({
      tenantId: row.tenantId,
      connectorId: row.id,
      stream,
      partition: '',
      cursor,
    }))
  if (values.length > 0) await tx.insert(streamState).values(values).onConflictDoNothing()
  await tx.update(connectors).set({ cursor: null }).where(eq(connectors.id, row.id))
}

/**
 * Makes stream_state hold exactly these partitions of a partitioned stream: new ones start from
 * scratch, ones the source no longer lists are dropped.
 */
export async function setPartitions(
  tx: Tx,
  key: StreamKey,
  partitions: readonly string[],
): Promise<void> {
  const names = [...new Set(partitions)]
  if (names.length > 0) {
    await tx
      .insert(streamState)
      .values(names.map((partition) => ({ ...key, partition })))
      .onConflictDoNothing()
  }
  await tx
    .delete(streamState)
    .where(
      and(ofStream(key), names.length > 0 ? notInArray(streamState.partition, names) : sql`true`),
    )
}

/** Forgets a stream's cursor (all partitions, or one), so its next read starts from scratch. */
export async function resetCursor(tx: Tx, key: StreamKey, partition?: string): Promise<void> {
  await tx
    .update(streamState)
    .set({ cursor: null, updatedAt: sql`now()` })
    .where(
      and(
        ofStream(key),
        partition === undefined ? sql`true` : eq(streamState.partition, partition),
      ),
    )
}

/**
 * The partitions a run still has to read, in order, each with its committed cursor: those the
 * run has not finished yet ('' alone for a stream without partitions).
 */
export async function pendingPartitions(
  tx: Tx,
  key: StreamKey,
  input: { runId: string; partitioned: boolean; only: string | null },
): Promise<Array<{ partition: string; cursor: string | null }>> {
  if (!input.partitioned) {
    const [row] = await tx
      .select({ cursor: streamState.cursor, lastRunId: streamState.lastRunId })
      .from(streamState)
      .where(and(ofStream(key), eq(streamState.partition, '')))
    if (row?.lastRunId === input.runId) return []
    return [{ partition: '', cursor: row?.cursor ?? null }]
  }
  const rows = await tx
    .select({ partition: streamState.partition, cursor: streamState.cursor })
    .from(streamState)
    .where(
      and(
        ofStream(key),
        or(isNull(streamState.lastRunId), sql`${streamState.lastRunId} <> ${input.runId}`),
        input.only === null ? sql`true` : eq(streamState.partition, input.only),
      ),
    )
    .orderBy(asc(streamState.partition))
  return rows
}

/** The committed cursor of a stream without partitions; null when it reads from the start. */
export async function streamCursor(tx: Tx, key: StreamKey): Promise<string | null> {
  const [row] = await tx
    .select({ cursor: streamState.cursor })
    .from(streamState)
    .where(and(ofStream(key), eq(streamState.partition, '')))
  return row?.cursor ?? null
}

/**
 * The statement that commits a partition's cursor (`finishedBy` also marks it read to its end by
 * that run), to make part of another: a page adds it to its run's update (see persistPage).
 */
export function cursorUpsert(
  tx: Tx,
  key: StreamKey,
  input: { partition: string; cursor: string | null; finishedBy?: string },
) {
  const finished = input.finishedBy
    ? {
        lastRunId: input.finishedBy,
        lastStatus: 'succeeded',
        lastSyncAt: sql`now()`,
        lastError: null,
      }
    : {}
  return tx
    .insert(streamState)
    .values({ ...key, partition: input.partition, cursor: input.cursor, ...finished })
    .onConflictDoUpdate({
      target: [
        streamState.tenantId,
        streamState.connectorId,
        streamState.stream,
        streamState.partition,
      ],
      set: { cursor: input.cursor, updatedAt: sql`now()`, ...finished },
    })
}

/** Records a failed run on the partitions it had not finished. */
export async function markFailed(
  tx: Tx,
  key: StreamKey,
  input: { runId: string; error: string; partitioned: boolean },
): Promise<void> {
  // A stream that failed before its first page has no row yet: it gets one, to say so.
  if (!input.partitioned) {
    await tx
      .insert(streamState)
      .values({ ...key, partition: '' })
      .onConflictDoNothing()
  }
  await tx
    .update(streamState)
    .set({ lastStatus: 'failed', lastError: input.error, updatedAt: sql`now()` })
    .where(
      and(
        ofStream(key),
        or(isNull(streamState.lastRunId), sql`${streamState.lastRunId} <> ${input.runId}`),
      ),
    )
}

/**
 * The mappings a run of `stream` uses per entity type: the connector's defaults for the stream,
 * the tenant's overrides for the entity type (every stream), then its overrides for this stream.
 */
export async function streamMappings(
  tx: Tx,
  connector: AnyConnector,
  connectorId: string,
  stream: StreamDefinition,
  /** Only these entity types (a webhook event's): a broken override of another is no concern. */
  only: Iterable<EntityType> = entityTypes,
): Promise<Map<EntityType, FieldMapping[]>> {
  const rows = await tx
    .select({
      entityType: fieldMappings.entityType,
      stream: fieldMappings.stream,
      mappings: fieldMappings.mappings,
    })
    .from(fieldMappings)
    .where(
      and(
        eq(fieldMappings.connectorId, connectorId),
        or(eq(fieldMappings.stream, ''), eq(fieldMappings.stream, stream.id)),
      ),
    )
  const mappings = new Map<EntityType, FieldMapping[]>()
  for (const entityType of new Set(only)) {
    const overrides = (scope: string): FieldMapping[] => {
      const row = rows.find((r) => r.entityType === entityType && r.stream === scope)
      return row ? checkedOverrides(entityType, row.mappings) : []
    }
    const base = mergeMappings(defaultMappings(connector, stream, entityType), overrides(''))
    mappings.set(entityType, mergeMappings(base, overrides(stream.id)))
  }
  return mappings
}

/**
 * The tenant's overrides of one entity type, for every stream of it (stream '') or for one
 * stream: checked, or undefined when there are none.
 */
export async function readOverrides(
  tx: Tx,
  connectorId: string,
  entityType: EntityType,
  stream: string,
): Promise<{ id: string; mappings: FieldMapping[] } | undefined> {
  const [row] = await tx
    .select({ id: fieldMappings.id, mappings: fieldMappings.mappings })
    .from(fieldMappings)
    .where(
      and(
        eq(fieldMappings.connectorId, connectorId),
        eq(fieldMappings.entityType, entityType),
        eq(fieldMappings.stream, stream),
      ),
    )
  return row ? { id: row.id, mappings: checkedOverrides(entityType, row.mappings) } : undefined
}

/** The column is jsonb: check it, so a hand-edited row fails here naming the field. */
function checkedOverrides(entityType: EntityType, mappings: unknown): FieldMapping[] {
  return validateMappings(entityType, mappings, { partial: true })
}

function ofStream(key: StreamKey) {
  return and(eq(streamState.connectorId, key.connectorId), eq(streamState.stream, key.stream))
}
