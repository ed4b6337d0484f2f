import { pgTable, text, timestamp, unique, uuid } from 'drizzle-orm/pg-core'
import { tenants } from './tenants.js'

/**
 * Terms a tenant's admin accepted before a connector may read its data (Microsoft 365's
 * data-processing terms). Kept apart from the connection, so they survive a reconnect.
 */
export const connectorAgreements = pgTable(
  'connector_agreements',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    /** The connector type. */
    connector: text('connector').notNull(),
    /** Which terms, e.g. `dpa`. */
    agreement: text('agreement').notNull(),
    acceptedBy: text('accepted_by').notNull(),
    acceptedAt: timestamp('accepted_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    unique('connector_agreements_tenant_connector_key').on(t.tenantId, t.connector, t.agreement),
  ],
)
