import { boolean, jsonb, pgTable, text, timestamp, unique, uuid } from 'drizzle-orm/pg-core'
import type { ConnectorStatus, EntityType, FieldMapping } from '../../shared/schemas.js'
import { tenants } from './tenants.js'

/** One connection of one tenant to one source: at most one per connector type per tenant. */
export const connectors = pgTable(
  'connectors',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    type: text('type').notNull(),
    status: text('status').$type<ConnectorStatus>().notNull().default('disconnected'),
    /** AES-256-GCM envelope (key id, IV, tag, ciphertext); null when disconnected. */
    encryptedCredentials: text('encrypted_credentials'),
    /** The connector's config without its secret keys. */
    config: jsonb('config').$type<Record<string, unknown>>().notNull().default({}),
    /**
     * The one cursor of a connection synced before streams: moved into stream_state (per stream)
     * by the connector's upgradeCursor on its next sync, then null.
     */
    cursor: text('cursor'),
    lastSyncAt: timestamp('last_sync_at', { withTimezone: true }),
    lastSyncError: text('last_sync_error'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [unique('connectors_tenant_type_key').on(t.tenantId, t.type)],
)

/**
 * A tenant's overrides of a connector's default field mappings for one entity type: for every
 * stream of that type (stream '') or for one stream, which then wins over the entity-wide list.
 */
export const fieldMappings = pgTable(
  'field_mappings',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    connectorId: uuid('connector_id')
      .notNull()
      .references(() => connectors.id, { onDelete: 'cascade' }),
    entityType: text('entity_type').$type<EntityType>().notNull(),
    /** The stream the overrides apply to; '' for every stream of the entity type. */
    stream: text('stream').notNull().default(''),
    mappings: jsonb('mappings').$type<FieldMapping[]>().notNull(),
    isDefault: boolean('is_default').notNull().default(false),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    unique('field_mappings_tenant_connector_entity_stream_key').on(
      t.tenantId,
      t.connectorId,
      t.entityType,
      t.stream,
    ),
  ],
)

/**
 * Where each stream (and each partition of a partitioned stream) of a connection stands: its
 * committed cursor and its last run. Written in the same transaction as each page's rows.
 */
export const streamState = pgTable(
  'stream_state',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    connectorId: uuid('connector_id')
      .notNull()
      .references(() => connectors.id, { onDelete: 'cascade' }),
    stream: text('stream').notNull(),
    /** The partition (a mailbox, a team); '' when the stream has none. */
    partition: text('partition').notNull().default(''),
    cursor: text('cursor'),
    /** The run that last read this partition to its end (or failed in it), and how it ended. */
    lastRunId: uuid('last_run_id'),
    lastStatus: text('last_status'),
    lastSyncAt: timestamp('last_sync_at', { withTimezone: true }),
    lastError: text('last_error'),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    unique('stream_state_tenant_connector_stream_partition_key').on(
      t.tenantId,
      t.connectorId,
      t.stream,
      t.partition,
    ),
  ],
)
