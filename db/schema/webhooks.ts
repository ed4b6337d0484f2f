import { sql } from 'drizzle-orm'
import { index, integer, jsonb, pgTable, text, timestamp, unique, uuid } from 'drizzle-orm/pg-core'
import { connectors } from './connectors.js'
import { tenants } from './tenants.js'

/** pending: waiting to be processed (or to be retried); processed; failed: given up on. */
export type WebhookInboxStatus = 'pending' | 'processed' | 'failed'

/**
 * Webhook events as received, one row per event of a source: written before the sender gets its
 * 2xx, then processed through the same map → quality → persist path as a sync page. A redelivered
 * event finds its row and is not stored (or processed) again.
 */
export const webhookInbox = pgTable(
  'webhook_inbox',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    connectorId: uuid('connector_id')
      .notNull()
      .references(() => connectors.id, { onDelete: 'cascade' }),
    /** The connector type, as in the `source` of the rows it produces. */
    source: text('source').notNull(),
    /** The source's id for the event: a redelivery carries the same one. */
    eventId: text('event_id').notNull(),
    /** The connector stream the event belongs to, when the connector says. */
    stream: text('stream'),
    eventType: text('event_type').notNull(),
    occurredAt: timestamp('occurred_at', { withTimezone: true }),
    /** The event as the source sent it (made storable: no NUL, no lone surrogate). */
    payload: jsonb('payload').$type<Record<string, unknown>>().notNull(),
    /** The source records the connector read from it, mapped when the event is processed. */
    records: jsonb('records').$type<unknown[]>().notNull(),
    receivedAt: timestamp('received_at', { withTimezone: true }).notNull().defaultNow(),
    status: text('status').$type<WebhookInboxStatus>().notNull().default('pending'),
    /** Processing attempts so far. */
    attempts: integer('attempts').notNull().default(0),
    processedAt: timestamp('processed_at', { withTimezone: true }),
    /** Why the last attempt failed. */
    error: text('error'),
  },
  (t) => [
    unique('webhook_inbox_tenant_source_event_key').on(t.tenantId, t.source, t.eventId),
    index('webhook_inbox_pending_idx')
      .on(t.tenantId, t.receivedAt)
      .where(sql`status = 'pending'`),
  ],
)
