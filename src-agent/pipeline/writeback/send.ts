/**
 * Writeback: field updates (scores) queued in writeback_queue with our field names, and sent to
 * the source in batches through the connector's writeback capability after the tenant's field
 * map, each item's outcome recorded. Only entity types whose writeback is enabled are sent; the
 * others wait in the queue. The Temporal writeback workflow and `gtm-agent writeback run` both
 * send through sendWritebackBatch, which claims its items so that two senders never send one.
 */
import { and, asc, eq, inArray, isNull, lte, or, sql, type SQL } from 'drizzle-orm'
import { z } from 'zod'
import type { DbHandle, Tx } from '../../../db/client.js'
import { connectors, writebackQueue } from '../../../db/schema/index.js'
import { withTenant } from '../../../db/tenant.js'
import { AppError, ConfigError, VendorError, describeError } from '../../../shared/errors.js'
import { entityTypeSchema, type EntityType } from '../../../shared/schemas.js'
import { recordAudit } from '../../audit/audit.js'
import type {
  AnyConnector,
  WritebackItem,
  WritebackPreview,
  WritebackResult,
} from '../../connectors/interface.js'
import type { ConnectorRegistry } from '../../connectors/registry.js'
import type { Logger } from '../../logging/logger.js'
import type { Keyring } from '../../secrets/crypto.js'
import {
  applyFieldMap,
  loadWritebackConfigs,
  requireWriteback,
  writebackConnector,
  type WritebackConfigView,
} from '../../services/writeback-config.js'
import { findConnection, openConnection } from '../connection.js'
import { credentialHooks } from '../credential-lock.js'

export const writebackItemSchema = z.object({
  entityType: entityTypeSchema,
  externalId: z.string().trim().min(1),
  fields: z
    .record(z.string(), z.unknown())
    .refine((fields) => Object.keys(fields).length > 0, 'must name at least one field'),
})

/** Items a file may hold. Larger score files are split. */
export const MAX_ENQUEUE_ITEMS = 1_000_000

/**
 * Checks updates before they are queued: the shape, and whether the connector can ever write the
 * item. `where(index)` names an item in errors ("line 7"). Every problem is collected, the first
 * ten reported; one bad item rejects them all.
 */
export function parseWritebackItems(
  connector: AnyConnector,
  items: readonly unknown[],
  where: (index: number) => string = (index) => `item ${index}`,
): WritebackItem[] {
  const capability = requireWriteback(connector)
  if (items.length > MAX_ENQUEUE_ITEMS) {
    throw new ConfigError(
      'record_invalid',
      `${items.length} updates are more than ${MAX_ENQUEUE_ITEMS} at once; split the file.`,
    )
  }
  const problems: string[] = []
  const parsed: WritebackItem[] = []
  items.forEach((raw, index) => {
    const result = writebackItemSchema.safeParse(raw)
    if (!result.success) {
      const issue = result.error.issues[0]
      const path = issue?.path.join('.') ?? ''
      problems.push(`${where(index)}: ${path ? `${path} ` : ''}${issue?.message ?? 'invalid'}`)
      return
    }
    const item = result.data
    if (!capability.defaults[item.entityType]) {
      const types = Object.keys(capability.defaults).join(', ')
      problems.push(
        `${where(index)}: ${connector.name} cannot write back ${item.entityType} records (only ${types})`,
      )
      return
    }
    const problem = capability.checkItem?.(item)
    if (problem) {
      problems.push(`${where(index)}: ${problem}`)
      return
    }
    parsed.push(item)
  })
  if (problems.length > 0) {
    const more = problems.length > 10 ? ` (and ${problems.length - 10} more)` : ''
    throw new ConfigError(
      'record_invalid',
      `Nothing was queued: ${problems.slice(0, 10).join('; ')}${more}.`,
    )
  }
  return parsed
}

/**
 * A JSON Lines score file: one `{ entityType, externalId, fields }` a line, blank lines ignored.
 * Errors name the line; nothing is returned unless every line is good.
 */
export function parseWritebackLines(connector: AnyConnector, text: string): WritebackItem[] {
  const lines: number[] = []
  const values: unknown[] = []
  const problems: string[] = []
  text.split('\n').forEach((line, index) => {
    if (line.trim() === '') return
    try {
      values.push(JSON.parse(line) as unknown)
      lines.push(index + 1)
    } catch {
      problems.push(`line ${index + 1}: not valid JSON`)
    }
  })
  if (problems.length > 0) {
    const more = problems.length > 10 ? ` (and ${problems.length - 10} more)` : ''
    throw new ConfigError(
      'record_invalid',
      `Nothing was queued: ${problems.slice(0, 10).join('; ')}${more}.`,
    )
  }
  return parseWritebackItems(connector, values, (index) => `line ${lines[index] ?? index + 1}`)
}

/**
 * Queues updates for a connection's source: the rows and their audit entry commit together, all
 * or nothing. Throws when the connection does not exist or was disconnected.
 */
export async function queueWriteback(
  deps: { handle: DbHandle; registry: ConnectorRegistry; userId: string },
  input: { tenantId: string; connectorType: string; items: readonly unknown[] },
): Promise<{ queued: number; connectorId: string }> {
  const { tenantId, connectorType } = input
  const { connector } = writebackConnector(deps.registry, connectorType)
  const items = parseWritebackItems(connector, input.items)
  return withTenant(deps.handle.db, tenantId, async (tx) => {
    const row = await findConnection(tx, tenantId, connectorType)
    if (!row || row.status === 'disconnected') {
      throw new AppError(
        'connector_not_connected',
        `${connector.name} is not connected for tenant "${tenantId}", so nothing can be written back to it.`,
      )
    }
    // Postgres takes at most 65,535 parameters a statement.
    for (let start = 0; start < items.length; start += 5_000) {
      await tx.insert(writebackQueue).values(
        items.slice(start, start + 5_000).map((item) => ({
          tenantId,
          connectorType,
          entityType: item.entityType,
          externalId: item.externalId,
          fields: item.fields,
        })),
      )
    }
    await recordAudit(tx, {
      tenantId,
      userId: deps.userId,
      action: 'writeback.enqueue',
      resource: 'connector',
      resourceId: row.id,
      metadata: { connectorType, items: items.length },
    })
    return { queued: items.length, connectorId: row.id }
  })
}

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

/** An item given up on, and why. */
export interface WritebackFailure {
  entityType: EntityType
  externalId: string
  error: string
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
        .where(and(...dueNow(connectorType, enabled), oldestOfItsRecord()))
        .orderBy(asc(writebackQueue.seq))
        .limit(Math.max(1, capability.maxBatchSize))
        .for('update', { skipLocked: true })
      if (due.length > 0) {
        await tx
          .update(writebackQueue)
          .set({ nextAttemptAt: sql`now() + ${CLAIM_LEASE}::interval` })
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

/** Whether any queued item of an enabled entity type is due now, inside a tenant transaction. */
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

/** What a dry run shows: each due item's change, and what waits because its type is disabled. */
export interface WritebackPreviewReport {
  items: Array<WritebackPreview & { entityType: EntityType }>
  /** Pending items of entity types whose writeback is disabled, by type. */
  disabled: Partial<Record<EntityType, number>>
  /** Pending items waiting for a retry after a transient failure. */
  waiting: number
}

/**
 * A dry run of `writeback run`: the items it would send now, each with the source's current
 * values next to the new ones (read from the source, nothing written there or in the queue).
 */
export async function previewQueuedWriteback(
  deps: WritebackDeps,
  input: { tenantId: string; connectorType: string; signal?: AbortSignal },
): Promise<WritebackPreviewReport> {
  const { tenantId, connectorType } = input
  const { connector, capability } = writebackConnector(deps.registry, connectorType)
  if (!capability.preview) {
    throw new ConfigError(
      'config_invalid',
      `${connector.name} cannot preview a writeback; run it without --dry-run to send it.`,
    )
  }
  const { row, credentials, configs, due } = await withTenant(
    deps.handle.db,
    tenantId,
    async (tx) => {
      const opened = await openWriteback(tx, deps.keyring, tenantId, connector)
      const { enabled } = opened
      // The latest queued update of each record: what the record would end up with.
      const due =
        enabled.length === 0
          ? []
          : await tx
              .selectDistinctOn([writebackQueue.entityType, writebackQueue.externalId])
              .from(writebackQueue)
              .where(and(...dueNow(connectorType, enabled)))
              .orderBy(
                asc(writebackQueue.entityType),
                asc(writebackQueue.externalId),
                sql`${writebackQueue.seq} desc`,
              )
      return { ...opened, due }
    },
  )
  due.sort((a, b) => a.seq - b.seq)
  const planned = due.map((item) =>
    applyFieldMap(toItem(item), configs.get(item.entityType)!.fieldMap),
  )
  const sendable = planned.flatMap((p) => ('item' in p ? [p.item] : []))
  const log = deps.log.child({ tenantId, connector: connectorType })
  const previews =
    sendable.length === 0
      ? []
      : await capability.preview(credentials, sendable, {
          log,
          ...(input.signal ? { signal: input.signal } : {}),
          ...credentialHooks(deps, { tenantId, connector, connectorId: row.id }),
        })
  const items = planned.map((p, index) => {
    const { entityType, externalId } = due[index]!
    const unwritable = (error: string) => ({
      entityType,
      externalId,
      objectType: null,
      found: false,
      changes: [],
      error,
    })
    if ('error' in p) return unwritable(p.error)
    const preview = previews.shift()
    return preview ? { entityType, ...preview } : unwritable('The source gave no preview of it.')
  })
  const counts = await pendingCounts(deps.handle, input)
  const disabled: Partial<Record<EntityType, number>> = {}
  for (const [type, config] of configs) {
    const count = counts.byType.get(type) ?? 0
    if (!config.enabled && count > 0) disabled[type] = count
  }
  return { items, disabled, waiting: counts.waiting }
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

// --- implementation ---

type QueueRow = typeof writebackQueue.$inferSelect

interface ItemOutcome {
  ok: boolean
  error?: string
  retryable?: boolean
  /** Postpone without counting an attempt (throttling, quota). */
  deferMs?: number
}

/** How long a claimed item is hidden from other senders; a sender that died lets go after it. */
const CLAIM_LEASE = '10 minutes'

const MAX_BACKOFF_MS = 60 * 60_000

/** The connection's row and credentials, and its writeback settings, in a tenant transaction. */
async function openWriteback(tx: Tx, keyring: Keyring, tenantId: string, connector: AnyConnector) {
  const opened = await openConnection(
    tx,
    keyring,
    tenantId,
    connector.id,
    connector.secretConfigKeys,
  )
  const configs = await loadWritebackConfigs(tx, tenantId, connector)
  return { ...opened, configs, enabled: enabledTypes(configs) }
}

function enabledTypes(configs: Map<EntityType, WritebackConfigView>): EntityType[] {
  return [...configs.values()].filter((c) => c.enabled).map((c) => c.entityType)
}

function toItem(row: QueueRow): WritebackItem {
  return { entityType: row.entityType, externalId: row.externalId, fields: row.fields }
}

function dueNow(connectorType: string, entityTypes: EntityType[]): SQL[] {
  return [
    eq(writebackQueue.connectorType, connectorType),
    eq(writebackQueue.status, 'pending'),
    inArray(writebackQueue.entityType, entityTypes),
    or(isNull(writebackQueue.nextAttemptAt), lte(writebackQueue.nextAttemptAt, sql`now()`))!,
  ]
}

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
  return { counts, failures }
}

/** Gives claimed items back when nothing was sent (their attempt is not counted). */
async function releaseClaim(handle: DbHandle, tenantId: string, batch: QueueRow[]): Promise<void> {
  await withTenant(handle.db, tenantId, (tx) =>
    tx
      .update(writebackQueue)
      .set({ nextAttemptAt: null })
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

async function pendingState(
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

/** Pending items by entity type, and how many of them wait for a later attempt. */
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
