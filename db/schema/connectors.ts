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
    cursor: text('cursor'),
    lastSyncAt: timestamp('last_sync_at', { withTimezone: true }),
    lastSyncError: text('last_sync_error'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [unique('connectors_tenant_type_key').on(t.tenantId, t.type)],
)

/** A tenant's overrides of a connector's default field mappings for one entity type. */
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
    mappings: jsonb('mappings').$type<FieldMapping[]>().notNull(),
    isDefault: boolean('is_default').notNull().default(false),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    unique('field_mappings_tenant_connector_entity_key').on(
      t.tenantId,
      t.connectorId,
      t.entityType,
    ),
  ],
)
