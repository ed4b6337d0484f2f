/**
 * Writeback: field updates (scores) queued in writeback_queue and sent to the source in batches
 * through the connector's writeback capability, each item's outcome recorded. Enqueueing wakes
 * (or starts) the one writeback workflow of the connection with signal-with-start.
 */
import type { Client } from '@temporalio/client'
import { and, asc, eq, isNull, lte, or, sql } from 'drizzle-orm'
import { z } from 'zod'
import type { DbHandle } from '../../db/client.js'
import { connectors, writebackQueue } from '../../db/schema/index.js'
import { withTenant } from '../../db/tenant.js'
import { AppError, ConfigError, VendorError, describeError } from '../../shared/errors.js'
import { entityTypeSchema } from '../../shared/schemas.js'
import { writebackWorkflowId } from '../../shared/temporal.js'
import { recordAudit } from '../audit/audit.js'
import type { AnyConnector, WritebackItem, WritebackResult } from '../connectors/interface.js'
import type { ConnectorRegistry } from '../connectors/registry.js'
import type { Logger } from '../logging/logger.js'
import { findConnection, openConnection } from '../pipeline/connection.js'
import { credentialHooks } from '../pipeline/credential-lock.js'
import type { Keyring } from '../secrets/crypto.js'
import { writeback, writebackEnqueuedSignal, type WritebackInput } from './workflows.js'

export const writebackItemSchema = z.object({
  entityType: entityTypeSchema,
  externalId: z.string().trim().min(1),
  fields: z.record(z.string(), z.unknown()),
})

export interface EnqueueDeps {
  handle: DbHandle
  client: Client
  taskQueue: string
  registry: ConnectorRegistry
  userId: string
}

/**
 * Queues updates for a connection's source and wakes its writeback workflow (starting it when
 * none runs). The rows and their audit entry commit together before the signal is sent, so a
 * workflow that wakes always finds them.
 */
export async function enqueueWriteback(
  deps: EnqueueDeps,
  input: {
    tenantId: string
    connectorType: string
    items: unknown[]
    workflow?: Omit<WritebackInput, 'tenantId' | 'connectorType'>
  },
): Promise<{ queued: number; workflowId: string }> {
  const { tenantId, connectorType } = input
  const connector = writebackConnector(deps.registry, connectorType)
  const items = input.items.map((item, index) => {
    const parsed = writebackItemSchema.safeParse(item)
    if (parsed.success) return parsed.data
    const issue = parsed.error.issues[0]
    throw new ConfigError(
      'record_invalid',
      `Writeback item ${index} is invalid: ${issue?.path.join('.') ?? ''} ${issue?.message ?? ''}`.trim(),
    )
  })
  await withTenant(deps.handle.db, tenantId, async (tx) => {
    const row = await findConnection(tx, tenantId, connectorType)
    if (!row || row.status === 'disconnected') {
      throw new AppError(
        'connector_not_connected',
        `${connector.name} is not connected for tenant "${tenantId}", so nothing can be written back to it.`,
      )
    }
    if (items.length > 0) {
      await tx
        .insert(writebackQueue)
        .values(items.map((item) => ({ tenantId, connectorType, ...item })))
    }
    await recordAudit(tx, {
      tenantId,
      userId: deps.userId,
      action: 'writeback.enqueue',
      resource: 'connector',
      resourceId: row.id,
      metadata: { connectorType, items: items.length },
    })
  })
  const workflowId = writebackWorkflowId(tenantId, connectorType)
  await deps.client.workflow.signalWithStart(writeback, {
    workflowId,
    taskQueue: deps.taskQueue,
    args: [{ ...input.workflow, tenantId, connectorType }],
    signal: writebackEnqueuedSignal,
    signalArgs: [],
  })
  return { queued: items.length, workflowId }
}

export interface WritebackBatchInput {
  tenantId: string
  connectorType: string
  /** Attempts after which an item that keeps failing transiently is given up on (failed). */
  maxAttempts: number
  /** Wait before retrying a transient failure: base × 2^(attempts − 1), at most an hour. */
  retryBaseMs: number
}

export interface WritebackBatchResult {
  sent: number
  /** Items given up on in this batch. */
  failed: number
  /** Items that failed transiently and wait for another attempt. */
  retrying: number
  /** Whether more items are due right now. */
  moreDue: boolean
  /** When nothing is due: milliseconds until the next pending item is, or null if none is pending. */
  nextDueInMs: number | null
}

/**
 * Sends the oldest due items (one update per record per batch) and records each outcome in one
 * transaction: sent, failed for good, or pending again after a backoff. A failure of the whole
 * request counts as a transient failure of each item, except throttling and an exhausted quota,
 * which only postpone them. Rejected credentials mark the connection "needs re-auth" and throw.
 */
export async function sendWritebackBatch(
  deps: { handle: DbHandle; keyring: Keyring; registry: ConnectorRegistry; log: Logger },
  input: WritebackBatchInput & { signal?: AbortSignal },
): Promise<WritebackBatchResult> {
  const { tenantId, connectorType } = input
  const connector = writebackConnector(deps.registry, connectorType)
  const capability = connector.writeback!
  const { row, credentials, due } = await withTenant(deps.handle.db, tenantId, async (tx) => {
    const opened = await openConnection(
      tx,
      deps.keyring,
      tenantId,
      connectorType,
      connector.secretConfigKeys,
    )
    const rows = await tx
      .select()
      .from(writebackQueue)
      .where(and(...dueNow(connectorType)))
      .orderBy(asc(writebackQueue.seq))
      .limit(Math.max(1, capability.maxBatchSize))
    return { ...opened, due: rows }
  })
  if (due.length === 0)
    return { sent: 0, failed: 0, retrying: 0, ...(await pendingState(deps.handle, input)) }

  // A later update of the same record waits for the next batch, so updates apply in order.
  const seen = new Set<string>()
  const batch = due.filter((item) => {
    const key = `${item.entityType}:${item.externalId}`
    if (seen.has(key)) return false
    seen.add(key)
    return true
  })
  const log = deps.log.child({ tenantId, connector: connectorType })
  let outcomes: ItemOutcome[]
  try {
    const results = await capability.send(
      credentials,
      batch.map((item): WritebackItem => ({
        entityType: item.entityType,
        externalId: item.externalId,
        fields: item.fields,
      })),
      {
        log,
        ...(input.signal ? { signal: input.signal } : {}),
        ...credentialHooks(deps, { tenantId, connector, connectorId: row.id }),
      },
    )
    outcomes = matchResults(batch, results)
  } catch (err) {
    if (!(err instanceof VendorError)) throw err
    if (err.code === 'vendor_auth_failed') {
      await markNeedsReauth(deps.handle, tenantId, row.id, err.userMessage)
      throw err
    }
    outcomes = batch.map(() => wholeRequestOutcome(err))
  }
  const counts = await recordOutcomes(deps.handle, {
    ...input,
    connectorId: row.id,
    batch,
    outcomes,
  })
  log.info({ batch: batch.length, ...counts }, 'writeback batch sent')
  return { ...counts, ...(await pendingState(deps.handle, input)) }
}

// --- implementation ---

type QueueRow = typeof writebackQueue.$inferSelect

interface ItemOutcome {
  ok: boolean
  error?: string
  retryable?: boolean
  /** Postpone without counting an attempt (throttling, quota). */
  deferMs?: number
}

function writebackConnector(registry: ConnectorRegistry, connectorType: string): AnyConnector {
  const connector = registry.get(connectorType)
  if (!connector.writeback) {
    throw new ConfigError(
      'config_invalid',
      `${connector.name} cannot write updates back to its source.`,
    )
  }
  return connector
}

function dueNow(connectorType: string) {
  return [
    eq(writebackQueue.connectorType, connectorType),
    eq(writebackQueue.status, 'pending'),
    or(isNull(writebackQueue.nextAttemptAt), lte(writebackQueue.nextAttemptAt, sql`now()`)),
  ]
}

/** Pairs each item with its result by external id; an item the source did not answer is retried. */
function matchResults(batch: QueueRow[], results: WritebackResult[]): ItemOutcome[] {
  const byId = new Map<string, WritebackResult[]>()
  for (const result of Array.isArray(results) ? results : []) {
    const list = byId.get(result.externalId) ?? []
    list.push(result)
    byId.set(result.externalId, list)
  }
  return batch.map((item) => {
    const result = byId.get(item.externalId)?.shift()
    if (!result)
      return { ok: false, error: 'The source returned no result for this record.', retryable: true }
    return {
      ok: result.ok === true,
      ...(result.error === undefined ? {} : { error: String(result.error) }),
      ...(result.retryable === undefined ? {} : { retryable: result.retryable }),
    }
  })
}

function wholeRequestOutcome(err: VendorError): ItemOutcome {
  const error = describeError(err)
  if (err.code === 'vendor_quota_exhausted') return { ok: false, error, deferMs: 60 * 60_000 }
  if (err.code === 'vendor_rate_limited')
    return { ok: false, error, deferMs: err.retryAfterMs ?? 60_000 }
  return { ok: false, error, retryable: err.retryable }
}

const MAX_BACKOFF_MS = 60 * 60_000

async function recordOutcomes(
  handle: DbHandle,
  input: WritebackBatchInput & { connectorId: string; batch: QueueRow[]; outcomes: ItemOutcome[] },
): Promise<{ sent: number; failed: number; retrying: number }> {
  const counts = { sent: 0, failed: 0, retrying: 0 }
  const rows = input.batch.map((item, index) => {
    const outcome = input.outcomes[index] ?? { ok: false, retryable: true }
    if (outcome.ok) {
      counts.sent += 1
      return {
        id: item.id,
        status: 'sent',
        attempts: item.attempts + 1,
        error: null,
        delayMs: null,
      }
    }
    const error = outcome.error ?? 'The source rejected this update.'
    if (outcome.deferMs !== undefined) {
      counts.retrying += 1
      return {
        id: item.id,
        status: 'pending',
        attempts: item.attempts,
        error,
        delayMs: outcome.deferMs,
      }
    }
    const attempts = item.attempts + 1
    if (outcome.retryable && attempts < input.maxAttempts) {
      counts.retrying += 1
      const delayMs = Math.min(MAX_BACKOFF_MS, input.retryBaseMs * 2 ** (attempts - 1))
      return { id: item.id, status: 'pending', attempts, error, delayMs }
    }
    counts.failed += 1
    const final = outcome.retryable ? `Gave up after ${attempts} attempts: ${error}` : error
    return { id: item.id, status: 'failed', attempts, error: final, delayMs: null }
  })
  const values = sql.join(
    rows.map(
      (r) =>
        sql`(${r.id}::uuid, ${r.status}::text, ${r.attempts}::int, ${r.error}::text, ${r.delayMs}::bigint)`,
    ),
    sql`, `,
  )
  await withTenant(handle.db, input.tenantId, async (tx) => {
    // One statement for the whole batch.
    await tx.execute(sql`
      update writeback_queue as q set
        status = v.status,
        attempts = v.attempts,
        last_error = v.error,
        sent_at = case when v.status = 'sent' then now() else q.sent_at end,
        next_attempt_at = case when v.delay_ms is null then null
                               else now() + v.delay_ms * interval '1 millisecond' end
      from (values ${values}) as v(id, status, attempts, error, delay_ms)
      where q.id = v.id`)
    await recordAudit(tx, {
      tenantId: input.tenantId,
      userId: 'system',
      action: 'writeback.send',
      resource: 'connector',
      resourceId: input.connectorId,
      metadata: { connectorType: input.connectorType, items: rows.length, ...counts },
    })
  })
  return counts
}

async function pendingState(
  handle: DbHandle,
  input: { tenantId: string; connectorType: string },
): Promise<{ moreDue: boolean; nextDueInMs: number | null }> {
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

async function markNeedsReauth(
  handle: DbHandle,
  tenantId: string,
  connectorId: string,
  message: string,
): Promise<void> {
  await withTenant(handle.db, tenantId, (tx) =>
    tx
      .update(connectors)
      .set({ status: 'error', lastSyncError: `needs re-auth: ${message}`, updatedAt: sql`now()` })
      .where(eq(connectors.id, connectorId)),
  )
}
