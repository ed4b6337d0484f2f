import {
  bigint,
  boolean,
  index,
  integer,
  jsonb,
  pgTable,
  text,
  timestamp,
  unique,
  uuid,
} from 'drizzle-orm/pg-core'
import { sql } from 'drizzle-orm'
import type { EntityType, WritebackFieldMapping } from '../../shared/schemas.js'
import { tenants } from './tenants.js'

export type WritebackStatus = 'pending' | 'sent' | 'failed'

/**
 * Field updates waiting to be written back to a source (scores to Salesforce). The writeback
 * workflow of (tenant, connector type) sends pending rows in batches and records each outcome.
 */
export const writebackQueue = pgTable(
  'writeback_queue',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    /** Queue order: rows queued in one statement share created_at, and updates apply in order. */
    seq: bigint('seq', { mode: 'number' }).generatedAlwaysAsIdentity(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    connectorType: text('connector_type').notNull(),
    entityType: text('entity_type').$type<EntityType>().notNull(),
    /** The record's id in the source. */
    externalId: text('external_id').notNull(),
    fields: jsonb('fields').$type<Record<string, unknown>>().notNull(),
    status: text('status').$type<WritebackStatus>().notNull().default('pending'),
    /** Send attempts so far. */
    attempts: integer('attempts').notNull().default(0),
    lastError: text('last_error'),
    /** A pending row that failed transiently waits until then (backoff); null means now. */
    nextAttemptAt: timestamp('next_attempt_at', { withTimezone: true }),
    /**
     * Who claimed the row to send it (the connection's writeback workflow), until its outcome is
     * recorded: that sender's next attempt takes the row back at once, others wait for the lease.
     */
    claimedBy: text('claimed_by'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    sentAt: timestamp('sent_at', { withTimezone: true }),
  },
  (t) => [
    index('writeback_queue_pending_idx').on(t.tenantId, t.connectorType, t.status, t.seq),
    // Finds the earlier pending updates of a record (they go first).
    index('writeback_queue_record_idx')
      .on(t.tenantId, t.connectorType, t.entityType, t.externalId, t.seq)
      .where(sql`status = 'pending'`),
  ],
)

/**
 * A tenant's writeback settings for one connector type and entity type: which fields are written
 * and whether that entity type is written back at all. Without a row the connector's defaults
 * apply (Salesforce: accounts enabled, combinedScore → GTM_Score__c, tier → GTM_Tier__c,
 * scoredAt → GTM_Scored_At__c).
 */
export const writebackConfigs = pgTable(
  'writeback_configs',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    connectorType: text('connector_type').notNull(),
    entityType: text('entity_type').$type<EntityType>().notNull(),
    fieldMap: jsonb('field_map').$type<WritebackFieldMapping[]>().notNull(),
    enabled: boolean('enabled').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    unique('writeback_configs_tenant_connector_entity_key').on(
      t.tenantId,
      t.connectorType,
      t.entityType,
    ),
  ],
)
