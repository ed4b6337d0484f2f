/**
 * The webhook inbox: verified events stored once each (before the sender gets its 2xx), then
 * processed one by one through the sync pipeline's map → quality → persist path.
 *
 * Not audited: receiving and processing an event is data flowing in, like a sync page, not an
 * admin's change; the inbox row itself is the record of what arrived and what became of it.
 */
import { and, asc, eq, sql } from 'drizzle-orm'
import { z } from 'zod'
import type { Db, Tx } from '../../db/client.js'
import { webhookInbox } from '../../db/schema/index.js'
import { withTenant } from '../../db/tenant.js'
import { describeError } from '../../shared/errors.js'
import { sourceRecordSchema } from '../../shared/schemas.js'
import type { WebhookEvent } from '../connectors/interface.js'
import type { ConnectorRegistry } from '../connectors/registry.js'
import { persistRecords, persistSideTables, type PageCounts } from '../pipeline/persist.js'
import { prepareRecords } from '../pipeline/prepare.js'
import { boundedMessage, storableValue } from '../pipeline/storable.js'
import { findStream, streamsOf } from '../connectors/streams.js'
import { streamMappings } from '../pipeline/stream-state.js'

/** Attempts before an event that keeps failing is marked failed and left alone. */
export const MAX_WEBHOOK_ATTEMPTS = 5

export interface StoreEventsInput {
  tenantId: string
  connectorId: string
  /** The connector type. */
  source: string
  events: readonly WebhookEvent[]
}

/**
 * Inserts the events into the inbox in the caller's tenant transaction; an event already there
 * (same tenant, source and event id: a redelivery) is left as it is.
 */
export async function storeEvents(
  tx: Tx,
  input: StoreEventsInput,
): Promise<{ stored: number; duplicates: number }> {
  if (input.events.length === 0) return { stored: 0, duplicates: 0 }
  const rows = input.events.map((event) => ({
    tenantId: input.tenantId,
    connectorId: input.connectorId,
    source: input.source,
    eventId: event.eventId,
    stream: event.stream ?? null,
    eventType: event.type,
    occurredAt: event.occurredAt ?? null,
    // jsonb refuses NUL and lone surrogates; what the source sent is kept otherwise unchanged.
    payload: storableValue(event.payload) as Record<string, unknown>,
    records: storableValue(JSON.parse(JSON.stringify(event.records))) as unknown[],
  }))
  const inserted = await tx
    .insert(webhookInbox)
    .values(rows)
    .onConflictDoNothing({
      target: [webhookInbox.tenantId, webhookInbox.source, webhookInbox.eventId],
    })
    .returning({ id: webhookInbox.id })
  return { stored: inserted.length, duplicates: rows.length - inserted.length }
}

/** What became of one pending event. */
export type ProcessOutcome =
  | { outcome: 'processed'; counts: PageCounts }
  /** It failed and stays pending for a later pass (or is failed for good after the last try). */
  | { outcome: 'retry' | 'failed'; attempts: number; error: string }
  /** Another process holds it, or it is no longer pending. */
  | { outcome: 'skipped' }

export interface InboxDeps {
  db: Db
  registry: ConnectorRegistry
}

/**
 * Processes one pending event in one tenant transaction: its row is locked (FOR UPDATE SKIP
 * LOCKED, so two agents never process it both), its records are mapped with the connection's
 * current mappings, checked and upserted (rejects quarantined), and it is marked processed, all
 * or nothing. A failure rolls the records back and leaves the event pending with its error, until
 * MAX_WEBHOOK_ATTEMPTS tries have failed.
 */
export async function processEvent(
  deps: InboxDeps,
  tenantId: string,
  inboxId: string,
): Promise<ProcessOutcome> {
  return withTenant(deps.db, tenantId, async (tx) => {
    const [row] = await tx
      .select()
      .from(webhookInbox)
      .where(and(eq(webhookInbox.id, inboxId), eq(webhookInbox.status, 'pending')))
      .for('update', { skipLocked: true })
    if (!row) return { outcome: 'skipped' }
    const attempts = row.attempts + 1
    try {
      const counts = await tx.transaction(async (savepoint) => {
        const connector = deps.registry.get(row.source)
        const records = storedRecordsSchema.parse(row.records)
        // The mappings of the event's stream (the connector's first when it names none).
        const stream = row.stream ? findStream(connector, row.stream) : streamsOf(connector)[0]!
        // Only the entity types the event carries: a broken mapping of another is no concern.
        const types = records.map((r) => r.entityType)
        const mappings = await streamMappings(savepoint, connector, row.connectorId, stream, types)
        const batches = prepareRecords(records, (e) => mappings.get(e) ?? [])
        const written = await persistRecords(savepoint, {
          tenantId,
          source: row.source,
          runId: null,
          stream: stream.id,
          batches,
        })
        await persistSideTables(savepoint, connector, { tenantId, records, batches })
        return written
      })
      await tx
        .update(webhookInbox)
        .set({ status: 'processed', attempts, processedAt: sql`now()`, error: null })
        .where(eq(webhookInbox.id, row.id))
      return { outcome: 'processed', counts }
    } catch (err) {
      const error = boundedMessage(describeError(err))
      const failed = attempts >= MAX_WEBHOOK_ATTEMPTS
      await tx
        .update(webhookInbox)
        .set({ status: failed ? 'failed' : 'pending', attempts, error })
        .where(eq(webhookInbox.id, row.id))
      return { outcome: failed ? 'failed' : 'retry', attempts, error }
    }
  })
}

/** A place in the inbox's processing order; the time is Postgres's text, to the microsecond. */
export interface InboxPosition {
  receivedAt: string
  id: string
}

/**
 * The tenant's pending events received up to `until`, oldest first, after `after` (keyset
 * paging: a pass visits each event once, so one that keeps failing cannot hold up the rest).
 */
export async function pendingEvents(
  db: Db,
  tenantId: string,
  options: {
    until: string
    after?: InboxPosition
    /** Only events not tried yet (a pass after new events arrived; retries wait for a sweep). */
    untried?: boolean
    limit?: number
  },
): Promise<Array<InboxPosition & { source: string }>> {
  const { after } = options
  const receivedAt = sql<string>`${webhookInbox.receivedAt}::text`
  return withTenant(db, tenantId, (tx) =>
    tx
      .select({ id: webhookInbox.id, receivedAt, source: webhookInbox.source })
      .from(webhookInbox)
      .where(
        and(
          eq(webhookInbox.status, 'pending'),
          options.untried ? eq(webhookInbox.attempts, 0) : undefined,
          sql`${webhookInbox.receivedAt} <= ${options.until}::timestamptz`,
          after
            ? sql`(${webhookInbox.receivedAt}, ${webhookInbox.id}) > (${after.receivedAt}::timestamptz, ${after.id}::uuid)`
            : undefined,
        ),
      )
      .orderBy(asc(webhookInbox.receivedAt), asc(webhookInbox.id))
      .limit(options.limit ?? 100),
  )
}

/** Postgres's clock as text, where a pass starts: events received later wait for the next one. */
export async function inboxClock(db: Db): Promise<string> {
  const result = await db.execute<{ now: string }>(sql`select now()::text as now`)
  return result.rows[0]!.now
}

const storedRecordsSchema = z.array(sourceRecordSchema)
