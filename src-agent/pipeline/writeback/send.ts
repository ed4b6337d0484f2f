/**
 * Sending writeback: the updates queued in writeback_queue (queue.ts) go to the source in batches through the connector's writeback capability after the tenant's field
 * map, each item's outcome recorded. Only entity types whose writeback is enabled are sent; the
 * others wait in the queue. The Temporal writeback workflow and `gtm-agent writeback run` both
 * send through sendWritebackBatch, which claims its items so that two senders never send one.
 */
import { and, asc, eq, inArray, sql, type SQL } from 'drizzle-orm'
import type { DbHandle } from '../../../db/client.js'
import { connectors, writebackQueue } from '../../../db/schema/index.js'
import { withTenant } from '../../../db/tenant.js'
import { VendorError, describeError } from '../../../shared/errors.js'
import type { EntityType } from '../../../shared/schemas.js'
import { recordAudit } from '../../audit/audit.js'
import type { WritebackResult } from '../../connectors/interface.js'
import type { ConnectorRegistry } from '../../connectors/registry.js'
import type { Logger } from '../../logging/logger.js'
import type { Keyring } from '../../secrets/crypto.js'
import { writebackItemsTotal } from '../../telemetry/metrics.js'
import { NEEDS_REAUTH_PREFIX } from '../connection.js'
import { credentialHooks } from '../credential-lock.js'
import {
  applyFieldMap,
  enabledTypes,
  loadWritebackConfigs,
  openWriteback,
  toItem,
  writebackConnector,
  type QueueRow,
} from './config.js'
import { dueNow, pendingCounts, pendingState, type WritebackFailure } from './status.js'

export interface WritebackDeps {
  handle: DbHandle
  keyring: Keyring
  registry: ConnectorRegistry
  log: Logger
}

export interface WritebackBatchInput {
  tenantId: string
  connectorType: string
  /** Attempts after which an item that keeps failing transiently is given up on (failed). */
  maxAttempts: number
  /** Wait before retrying a transient failure: base × 2^(attempts − 1), at most an hour. */
  retryBaseMs: number
  /**
   * The sender, when it is one that never runs twice at once (the connection's writeback
   * workflow): items it claimed in an attempt that died are due to it again at once.
   */
  claimant?: string
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
 * Sends the oldest due items of the enabled entity types (only the oldest pending update of a
 * record, so updates apply in order) and records each outcome in one transaction: sent, failed
 * for good, or pending again after a backoff. The items are claimed first (their next attempt
 * moved a lease ahead), so a second sender skips them. A failure of the whole request counts as a
 * transient failure of each item, except throttling and an exhausted quota, which only postpone
 * them. Rejected credentials mark the connection "needs re-auth" and throw.
 */
export async function sendWritebackBatch(
  deps: WritebackDeps,
  input: WritebackBatchInput & { signal?: AbortSignal; stop?: AbortSignal },
): Promise<WritebackBatchResult & { failures: WritebackFailure[] }> {
  const { tenantId, connectorType } = input
  const { connector, capability } = writebackConnector(deps.registry, connectorType)
  const { row, credentials, configs, batch } = await withTenant(
    deps.handle.db,
    tenantId,
    async (tx) => {
      const opened = await openWriteback(tx, deps.keyring, tenantId, connector)
      const { enabled } = opened
      if (enabled.length === 0) return { ...opened, batch: [] }
      const due = await tx
        .select()
        .from(writebackQueue)
        .where(
          and(
            ...dueNow(connectorType, enabled, input.claimant ? [input.claimant] : []),
            oldestOfItsRecord(),
          ),
        )
        .orderBy(asc(writebackQueue.seq))
        .limit(Math.max(1, capability.maxBatchSize))
        .for('update', { skipLocked: true })
      if (due.length > 0) {
        await tx
          .update(writebackQueue)
          .set({
            nextAttemptAt: sql`now() + ${CLAIM_LEASE}::interval`,
            claimedBy: input.claimant ?? null,
          })
          .where(
            inArray(
              writebackQueue.id,
              due.map((item) => item.id),
            ),
          )
      }
      return { ...opened, batch: due }
    },
  )
  if (batch.length === 0) {
    const state = await pendingState(deps.handle, input, enabledTypes(configs))
    return { sent: 0, failed: 0, retrying: 0, failures: [], ...state }
  }

  // Our field names → the source's; an item the field map says nothing of fails here.
  const planned = batch.map((item) => {
    const config = configs.get(item.entityType)!
    return applyFieldMap(toItem(item), config.fieldMap)
  })
  const sendable = planned.flatMap((p) => ('item' in p ? [p.item] : []))
  const log = deps.log.child({ tenantId, connector: connectorType })
  let outcomes: ItemOutcome[]
  try {
    const results =
      sendable.length === 0
        ? []
        : await capability.send(credentials, sendable, {
            log,
            ...(input.signal ? { signal: input.signal } : {}),
            ...(input.stop ? { stop: input.stop } : {}),
            ...credentialHooks(deps, { tenantId, connector, connectorId: row.id }),
            labels: { tenant: tenantId, connector: connectorType },
          })
    const answers = matchResults(
      batch.filter((_, index) => 'item' in planned[index]!),
      results,
    )
    outcomes = planned.map((p) =>
      'error' in p ? { ok: false, error: p.error, retryable: false } : answers.shift()!,
    )
  } catch (err) {
    if (!(err instanceof VendorError)) {
      await releaseClaim(deps.handle, tenantId, batch)
      throw err
    }
    if (err.code === 'vendor_auth_failed') {
      await releaseClaim(deps.handle, tenantId, batch)
      await markNeedsReauth(deps.handle, tenantId, row.id, err.userMessage)
      throw err
    }
    outcomes = planned.map((p) =>
      'error' in p ? { ok: false, error: p.error, retryable: false } : wholeRequestOutcome(err),
    )
  }
  const { counts, failures } = await recordOutcomes(deps.handle, {
    ...input,
    connectorId: row.id,
    batch,
    outcomes,
  })
  log.info({ batch: batch.length, ...counts }, 'writeback batch sent')
  const state = await pendingState(deps.handle, input, enabledTypes(configs))
  return { ...counts, failures, ...state }
}

/** Totals of a `writeback run`: every batch until nothing more is due now. */
export interface WritebackRunSummary {
  sent: number
  failed: number
  retrying: number
  batches: number
  failures: WritebackFailure[]
  /** Pending items of entity types whose writeback is disabled, by type. */
  disabled: Partial<Record<EntityType, number>>
  /** Pending items waiting for a later attempt (this run's retries and earlier ones). */
  waiting: number
  /** Milliseconds until the next pending item is due (a retry), or null when none waits. */
  nextDueInMs: number | null
}

/**
 * Sends batches until nothing is due now (items waiting for a retry stay queued), reporting each
 * batch. Stops after the current batch when `stop` aborts (or `signal`, which also aborts the
 * request in flight).
 */
export async function runWriteback(
  deps: WritebackDeps,
  input: WritebackBatchInput & {
    signal?: AbortSignal
    stop?: AbortSignal
    onBatch?: (totals: WritebackRunSummary) => void
  },
): Promise<WritebackRunSummary> {
  const totals: WritebackRunSummary = {
    sent: 0,
    failed: 0,
    retrying: 0,
    batches: 0,
    failures: [],
    disabled: {},
    waiting: 0,
    nextDueInMs: null,
  }
  for (;;) {
    const result = await sendWritebackBatch(deps, input)
    const worked = result.sent + result.failed + result.retrying
    totals.sent += result.sent
    totals.failed += result.failed
    totals.retrying += result.retrying
    totals.failures.push(...result.failures)
    totals.nextDueInMs = result.nextDueInMs
    if (worked > 0) {
      totals.batches += 1
      input.onBatch?.(totals)
    }
    if (!result.moreDue || worked === 0 || input.stop?.aborted || input.signal?.aborted) break
  }
  const { connector } = writebackConnector(deps.registry, input.connectorType)
  const [configs, counts] = await Promise.all([
    withTenant(deps.handle.db, input.tenantId, (tx) =>
      loadWritebackConfigs(tx, input.tenantId, connector),
    ),
    pendingCounts(deps.handle, input),
  ])
  for (const [type, config] of configs) {
    const count = counts.byType.get(type) ?? 0
    if (!config.enabled && count > 0) totals.disabled[type] = count
  }
  totals.waiting = counts.waiting
  return totals
}

// --- implementation ---

interface ItemOutcome {
  ok: boolean
  error?: string
  retryable?: boolean
  /** Postpone without counting an attempt (throttling, quota). */
  deferMs?: number
}

/**
 * How long a claimed item is hidden from other senders; a sender that died lets go after it (its
 * own next attempt, with the same claimant, does not wait).
 */
const CLAIM_LEASE = '10 minutes'

const MAX_BACKOFF_MS = 60 * 60_000

/** No earlier update of the same record is still pending (being sent, or waiting for a retry). */
function oldestOfItsRecord(): SQL {
  return sql`not exists (
    select 1 from writeback_queue earlier
     where earlier.tenant_id = ${writebackQueue.tenantId}
       and earlier.connector_type = ${writebackQueue.connectorType}
       and earlier.entity_type = ${writebackQueue.entityType}
       and earlier.external_id = ${writebackQueue.externalId}
       and earlier.status = 'pending'
       and earlier.seq < ${writebackQueue.seq})`
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

async function recordOutcomes(
  handle: DbHandle,
  input: WritebackBatchInput & { connectorId: string; batch: QueueRow[]; outcomes: ItemOutcome[] },
): Promise<{
  counts: { sent: number; failed: number; retrying: number }
  failures: WritebackFailure[]
}> {
  const counts = { sent: 0, failed: 0, retrying: 0 }
  const failures: WritebackFailure[] = []
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
    failures.push({ entityType: item.entityType, externalId: item.externalId, error: final })
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
                               else now() + v.delay_ms * interval '1 millisecond' end,
        claimed_by = null
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
  for (const [outcome, n] of Object.entries(counts)) {
    if (n > 0) {
      writebackItemsTotal.inc(
        { tenant: input.tenantId, connector: input.connectorType, outcome },
        n,
      )
    }
  }
  return { counts, failures }
}

/** Gives claimed items back when nothing was sent (their attempt is not counted). */
async function releaseClaim(handle: DbHandle, tenantId: string, batch: QueueRow[]): Promise<void> {
  await withTenant(handle.db, tenantId, (tx) =>
    tx
      .update(writebackQueue)
      .set({ nextAttemptAt: null, claimedBy: null })
      .where(
        and(
          inArray(
            writebackQueue.id,
            batch.map((item) => item.id),
          ),
          eq(writebackQueue.status, 'pending'),
        ),
      ),
  )
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
      .set({
        status: 'error',
        lastSyncError: `${NEEDS_REAUTH_PREFIX}${message}`,
        updatedAt: sql`now()`,
      })
      .where(eq(connectors.id, connectorId)),
  )
}
