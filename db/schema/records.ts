import {
  index,
  integer,
  jsonb,
  numeric,
  pgTable,
  text,
  timestamp,
  unique,
  uuid,
} from 'drizzle-orm/pg-core'

// The scoring engine reads these tables by name: table and column names are a contract.

// The tenant of a record. No declared foreign key: Postgres checks one row at a time, which
// costs a sync about as much as writing the row's indexes. Triggers (migration 0019) hold the
// same rules a statement at a time: a record's tenant exists (checked and locked once per
// statement), its tenant_id never changes, and deleting a tenant deletes its records.
const tenantId = () => text('tenant_id').notNull()

const bookkeeping = () => ({
  /** The raw vendor record, secrets removed. */
  sourceData: jsonb('source_data').$type<Record<string, unknown>>().notNull().default({}),
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  /** Set when the source reports the record deleted; the row is kept. */
  deletedAt: timestamp('deleted_at', { withTimezone: true }),
  /**
   * The connector stream that last wrote the record (its count on the Connectors screen); null
   * for rows written before streams were recorded, until the stream reads them again.
   */
  stream: text('stream'),
})

/** Canonical Person rows. */
export const people = pgTable(
  'people',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tenantId: tenantId(),
    /** The connector type the record came from. */
    source: text('source').notNull(),
    externalId: text('external_id').notNull(),
    email: text('email'),
    firstName: text('first_name'),
    lastName: text('last_name'),
    title: text('title'),
    phone: text('phone'),
    accountExternalId: text('account_external_id'),
    ...bookkeeping(),
  },
  (t) => [
    unique('people_tenant_source_external_key').on(t.tenantId, t.source, t.externalId),
    index('people_tenant_email_idx').on(t.tenantId, t.email),
  ],
)

/** Canonical Account rows. */
export const accounts = pgTable(
  'accounts',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tenantId: tenantId(),
    source: text('source').notNull(),
    externalId: text('external_id').notNull(),
    name: text('name').notNull(),
    domain: text('domain'),
    industry: text('industry'),
    employeeCount: integer('employee_count'),
    annualRevenue: numeric('annual_revenue', { mode: 'number' }),
    ...bookkeeping(),
  },
  (t) => [
    unique('accounts_tenant_source_external_key').on(t.tenantId, t.source, t.externalId),
    index('accounts_tenant_domain_idx').on(t.tenantId, t.domain),
  ],
)

/** Canonical Activity rows. */
export const activities = pgTable(
  'activities',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tenantId: tenantId(),
    source: text('source').notNull(),
    externalId: text('external_id').notNull(),
    type: text('type').notNull(),
    channel: text('channel'),
    occurredAt: timestamp('occurred_at', { withTimezone: true }).notNull(),
    personExternalId: text('person_external_id'),
    accountExternalId: text('account_external_id'),
    properties: jsonb('properties').$type<Record<string, unknown>>().notNull().default({}),
    ...bookkeeping(),
  },
  (t) => [
    unique('activities_tenant_source_external_key').on(t.tenantId, t.source, t.externalId),
    index('activities_tenant_occurred_idx').on(t.tenantId, t.occurredAt),
  ],
)
