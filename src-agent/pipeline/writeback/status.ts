/**
 * The state of a connection's writeback queue: what is due now, what waits for a retry, what was
 * sent or given up on. Read by the senders, the scheduler and `writeback status`.
 */
import { and, eq, inArray, isNull, lte, or, sql, type SQL } from 'drizzle-orm'
import type { DbHandle, Tx } from '../../../db/client.js'
import { writebackQueue } from '../../../db/schema/index.js'
import { withTenant } from '../../../db/tenant.js'
import type { EntityType } from '../../../shared/schemas.js'
import type { AnyConnector } from '../../connectors/interface.js'
import type { ConnectorRegistry } from '../../connectors/registry.js'
import { enabledTypes, loadWritebackConfigs, writebackConnector } from './config.js'

/** Whether any queued item of an enabled entity type is due now, inside a tenant transaction. */

/** An item given up on, and why. */
export interface WritebackFailure {
  entityType: EntityType
  externalId: string
  error: string
}

export async function hasDueWriteback(
  tx: Tx,
  tenantId: string,
  connector: AnyConnector,
): Promise<boolean> {
  if (!connector.writeback) return false
  const enabled = enabledTypes(await loadWritebackConfigs(tx, tenantId, connector))
  if (enabled.length === 0) return false
  const rows = await tx
    .select({ id: writebackQueue.id })
    .from(writebackQueue)
    .where(and(...dueNow(connector.id, enabled)))
    .limit(1)
  return rows.length > 0
}

/** The queue of one connection as an operator sees it. */
export interface WritebackStatus {
  entityTypes: Array<{
    entityType: EntityType
    enabled: boolean
    /** Pending and due now. */
    due: number
    /** Pending, waiting for a retry (or claimed by a sender right now). */
    waiting: number
    sent: number
    failed: number
    lastSentAt: Date | null
  }>
  /** The most recent failures, newest first. */
  failures: Array<WritebackFailure & { attempts: number; queuedAt: Date }>
}

/** Counts per entity type and status, and the latest failures, for `writeback status`. */
export async function writebackStatus(
  deps: { handle: DbHandle; registry: ConnectorRegistry },
  input: { tenantId: string; connectorType: string; failures?: number },
): Promise<WritebackStatus> {
  const { connector } = writebackConnector(deps.registry, input.connectorType)
  return withTenant(deps.handle.db, input.tenantId, async (tx) => {
    const configs = await loadWritebackConfigs(tx, input.tenantId, connector)
    const q = writebackQueue
    const rows = await tx
      .select({
        entityType: q.entityType,
        due: sql<number>`count(*) filter (where ${q.status} = 'pending' and (${q.nextAttemptAt} is null or ${q.nextAttemptAt} <= now()))::int`,
        waiting: sql<number>`count(*) filter (where ${q.status} = 'pending' and ${q.nextAttemptAt} > now())::int`,
        sent: sql<number>`count(*) filter (where ${q.status} = 'sent')::int`,
        failed: sql<number>`count(*) filter (where ${q.status} = 'failed')::int`,
        lastSentAt: sql<string | null>`max(${q.sentAt})`,
      })
      .from(q)
      .where(eq(q.connectorType, input.connectorType))
      .groupBy(q.entityType)
    const failed = await tx
      .select({
        entityType: q.entityType,
        externalId: q.externalId,
        error: q.lastError,
        attempts: q.attempts,
        queuedAt: q.createdAt,
      })
      .from(q)
      .where(and(eq(q.connectorType, input.connectorType), eq(q.status, 'failed')))
      .orderBy(sql`${q.seq} desc`)
      .limit(input.failures ?? 20)
    const byType = new Map(rows.map((r) => [r.entityType, r]))
    const types = [...new Set([...configs.keys(), ...byType.keys()])]
    return {
      entityTypes: types.map((entityType) => {
        const r = byType.get(entityType)
        return {
          entityType,
          enabled: configs.get(entityType)?.enabled ?? false,
          due: r?.due ?? 0,
          waiting: r?.waiting ?? 0,
          sent: r?.sent ?? 0,
          failed: r?.failed ?? 0,
          lastSentAt: r?.lastSentAt ? new Date(r.lastSentAt) : null,
        }
      }),
      failures: failed.map((f) => ({ ...f, error: f.error ?? 'unknown error' })),
    }
  })
}

/**
 * Conditions for the pending items of `entityTypes` that are due now: their time has come, or one
 * of `claimants` claimed them and died before recording their outcome.
 */
export function dueNow(
  connectorType: string,
  entityTypes: EntityType[],
  claimants: readonly string[] = [],
): SQL[] {
  return [
    eq(writebackQueue.connectorType, connectorType),
    eq(writebackQueue.status, 'pending'),
    inArray(writebackQueue.entityType, entityTypes),
    or(
      isNull(writebackQueue.nextAttemptAt),
      lte(writebackQueue.nextAttemptAt, sql`now()`),
      // Claimed by this sender in an attempt that never recorded its outcome.
      ...(claimants.length > 0 ? [inArray(writebackQueue.claimedBy, [...claimants])] : []),
    )!,
  ]
}

/** Whether more items are due now, else when the next one is. */
export async function pendingState(
  handle: DbHandle,
  input: { tenantId: string; connectorType: string },
  entityTypes: EntityType[],
): Promise<{ moreDue: boolean; nextDueInMs: number | null }> {
  if (entityTypes.length === 0) return { moreDue: false, nextDueInMs: null }
  const [state] = await withTenant(handle.db, input.tenantId, (tx) =>
    tx
      .select({
        due: sql<number>`count(*) filter (where ${writebackQueue.nextAttemptAt} is null or ${writebackQueue.nextAttemptAt} <= now())::int`,
        nextInMs: sql<
          string | null
        >`ceil(extract(epoch from (min(${writebackQueue.nextAttemptAt}) - now())) * 1000)::bigint`,
      })
      .from(writebackQueue)
      .where(
        and(
          eq(writebackQueue.connectorType, input.connectorType),
          eq(writebackQueue.status, 'pending'),
          inArray(writebackQueue.entityType, entityTypes),
        ),
      ),
  )
  if (!state) return { moreDue: false, nextDueInMs: null }
  if (state.due > 0) return { moreDue: true, nextDueInMs: 0 }
  return {
    moreDue: false,
    nextDueInMs: state.nextInMs === null ? null : Math.max(0, Number(state.nextInMs)),
  }
}

export /** Pending items by entity type, and how many of them wait for a later attempt. */
async function pendingCounts(
  handle: DbHandle,
  input: { tenantId: string; connectorType: string },
): Promise<{ byType: Map<EntityType, number>; waiting: number }> {
  const rows = await withTenant(handle.db, input.tenantId, (tx) =>
    tx
      .select({
        entityType: writebackQueue.entityType,
        pending: sql<number>`count(*)::int`,
        waiting: sql<number>`count(*) filter (where ${writebackQueue.nextAttemptAt} > now())::int`,
      })
      .from(writebackQueue)
      .where(
        and(
          eq(writebackQueue.connectorType, input.connectorType),
          eq(writebackQueue.status, 'pending'),
        ),
      )
      .groupBy(writebackQueue.entityType),
  )
  return {
    byType: new Map(rows.map((r) => [r.entityType, r.pending])),
    waiting: rows.reduce((sum, r) => sum + r.waiting, 0),
  }
}
