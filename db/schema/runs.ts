import { sql } from 'drizzle-orm'
import { index, integer, jsonb, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core'
import type { EntityType, SyncMode, SyncRunStatus } from '../../shared/schemas.js'
import { connectors } from './connectors.js'
import { tenants } from './tenants.js'

/** One sync of one stream of a connection: its mode, outcome and counts. */
export const syncRuns = pgTable(
  'sync_runs',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    connectorId: uuid('connector_id')
      .notNull()
      .references(() => connectors.id, { onDelete: 'cascade' }),
    /** The stream read; null for runs made before connections had streams. */
    stream: text('stream'),
    /** The one partition read (`sync --partition`); null when the run read all of them. */
    partition: text('partition'),
    mode: text('mode').$type<SyncMode>().notNull(),
    status: text('status').$type<SyncRunStatus>().notNull().default('running'),
    startedAt: timestamp('started_at', { withTimezone: true }).notNull().defaultNow(),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
    pages: integer('pages').notNull().default(0),
    created: integer('created').notNull().default(0),
    updated: integer('updated').notNull().default(0),
    errors: integer('errors').notNull().default(0),
    /** Records the source reported deleted that were marked deleted_at. */
    deleted: integer('deleted').notNull().default(0),
    error: text('error'),
    /** The error's code (shared/errors.ts ErrorCode), so failures can be grouped and explained. */
    errorCode: text('error_code'),
    /** Vendor calls retried during the run (a transient failure, then another attempt). */
    retries: integer('retries').notNull().default(0),
    /** The same retries by reason (`timeout`, `http_503`, `cut_body`, …): reason → count. */
    retryReasons: jsonb('retry_reasons').$type<Record<string, number>>().notNull().default({}),
  },
  (t) => [
    index('sync_runs_connector_started_idx').on(t.tenantId, t.connectorId, t.startedAt),
    // A connection's latest run of each stream, found by a few index probes however long its
    // history (see failingStreams in pipeline/run-sync.ts).
    index('sync_runs_connector_stream_idx').on(t.connectorId, t.stream, t.startedAt),
    // The runs still running: every run's start and end looks for those of its connection.
    index('sync_runs_running_idx')
      .on(t.connectorId)
      .where(sql`${t.status} = 'running'`),
  ],
)

/** Records that failed quality checks: kept with the reason, never silently dropped. */
export const quarantine = pgTable(
  'quarantine',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    /** The connector type. */
    connector: text('connector').notNull(),
    syncRunId: uuid('sync_run_id').references(() => syncRuns.id, { onDelete: 'set null' }),
    entityType: text('entity_type').$type<EntityType>().notNull(),
    externalId: text('external_id'),
    /** Names the failing field. */
    reason: text('reason').notNull(),
    rawPayload: jsonb('raw_payload').$type<Record<string, unknown>>().notNull(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('quarantine_tenant_connector_idx').on(t.tenantId, t.connector, t.createdAt)],
)
