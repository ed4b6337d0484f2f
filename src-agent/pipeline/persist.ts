import { and, eq, getTableColumns, getTableName, inArray, isNull, sql, type SQL } from 'drizzle-orm'
import type { Tx } from '../../db/client.js'
import {
  accounts,
  activities,
  connectors,
  people,
  quarantine,
  syncRuns,
} from '../../db/schema/index.js'
import type {
  CanonicalAccount,
  CanonicalActivity,
  CanonicalPerson,
  EntityType,
} from '../../shared/schemas.js'
import type { PreparedBatch } from './prepare.js'

/** One page's prepared records, written with the connector's new cursor in one transaction. */
export interface PageWrite {
  tenantId: string
  connectorId: string
  /** The connector type: the `source` of every row. */
  source: string
  runId: string
  batches: { [E in EntityType]: PreparedBatch<E> }
  cursor: string | null
}

export interface PageCounts {
  created: number
  updated: number
  deleted: number
  errors: number
}

/**
 * Writes one page: a set-based upsert per table keyed by (tenant_id, source, external_id),
 * soft deletes, quarantined rejects, the connector's cursor and the run's counters. The caller's
 * transaction makes it all-or-nothing, so a crash resumes from the last committed cursor.
 */
export async function persistPage(tx: Tx, page: PageWrite): Promise<PageCounts> {
  const counts: PageCounts = { created: 0, updated: 0, deleted: 0, errors: 0 }
  const key = { tenantId: page.tenantId, source: page.source }
  const targets = [
    [people, page.batches.person.upserts.map((u) => personRow(key, u.record, u.raw))],
    [accounts, page.batches.account.upserts.map((u) => accountRow(key, u.record, u.raw))],
    [activities, page.batches.activity.upserts.map((u) => activityRow(key, u.record, u.raw))],
  ] as const
  for (const [table, rows] of targets) {
    const result = await upsertRows(tx, table, rows)
    counts.created += result.created
    counts.updated += result.updated
  }
  counts.deleted += await markDeleted(tx, people, page, page.batches.person.deletions)
  counts.deleted += await markDeleted(tx, accounts, page, page.batches.account.deletions)
  counts.deleted += await markDeleted(tx, activities, page, page.batches.activity.deletions)

  const rejects = (['person', 'account', 'activity'] as const).flatMap((entityType) =>
    page.batches[entityType].rejects.map((r) => ({
      tenantId: page.tenantId,
      connector: page.source,
      syncRunId: page.runId,
      entityType,
      externalId: r.externalId,
      reason: `${r.field}: ${r.reason}`,
      rawPayload: r.raw,
    })),
  )
  for (const chunk of chunks(rejects, 1000)) await tx.insert(quarantine).values(chunk)
  counts.errors = rejects.length

  await tx
    .update(connectors)
    .set({ cursor: page.cursor, updatedAt: sql`now()` })
    .where(eq(connectors.id, page.connectorId))
  await tx
    .update(syncRuns)
    .set({
      pages: sql`${syncRuns.pages} + 1`,
      created: sql`${syncRuns.created} + ${counts.created}`,
      updated: sql`${syncRuns.updated} + ${counts.updated}`,
      errors: sql`${syncRuns.errors} + ${counts.errors}`,
      deleted: sql`${syncRuns.deleted} + ${counts.deleted}`,
    })
    .where(eq(syncRuns.id, page.runId))
  return counts
}

type RowKey = { tenantId: string; source: string }
type RecordTable = typeof people | typeof accounts | typeof activities

const KEY_COLUMNS = new Set(['id', 'tenantId', 'source', 'externalId', 'createdAt'])
// Postgres takes at most 65,535 parameters per statement.
const MAX_PARAMS = 60_000

/** One INSERT … ON CONFLICT per table and chunk; unchanged rows are left alone and not counted. */
async function upsertRows(
  tx: Tx,
  table: RecordTable,
  rows: ReadonlyArray<Record<string, unknown>>,
): Promise<{ created: number; updated: number }> {
  if (rows.length === 0) return { created: 0, updated: 0 }
  const columns: Record<string, { name: string }> = getTableColumns(table)
  const set: Record<string, SQL> = {}
  const compared: SQL[] = []
  const incoming: SQL[] = []
  for (const [prop, column] of Object.entries(columns)) {
    if (KEY_COLUMNS.has(prop)) continue
    if (prop === 'updatedAt') {
      set[prop] = sql`now()`
    } else if (prop === 'deletedAt') {
      set[prop] = sql`null`
    } else {
      set[prop] = sql.raw(`excluded.${quote(column.name)}`)
      compared.push(sql.raw(`${quote(getTableName(table))}.${quote(column.name)}`))
      incoming.push(sql.raw(`excluded.${quote(column.name)}`))
    }
  }
  // Only a real change (or a revival of a deleted row) is an update.
  const changed = sql`(${sql.join(compared, sql`, `)}) is distinct from (${sql.join(incoming, sql`, `)}) or ${sql.raw(quote(getTableName(table)))}.deleted_at is not null`
  const perRow = Object.keys(columns).length
  let created = 0
  let updated = 0
  for (const chunk of chunks(rows, Math.floor(MAX_PARAMS / perRow))) {
    const result = await tx
      .insert(table)
      // The three row builders produce exactly the table's insert shape.
      .values(chunk as never[])
      .onConflictDoUpdate({
        target: [table.tenantId, table.source, table.externalId],
        set,
        setWhere: changed,
      })
      .returning({ inserted: sql<boolean>`(xmax = 0)` })
    for (const row of result) {
      if (row.inserted) created++
      else updated++
    }
  }
  return { created, updated }
}

async function markDeleted(
  tx: Tx,
  table: RecordTable,
  page: PageWrite,
  externalIds: readonly string[],
): Promise<number> {
  if (externalIds.length === 0) return 0
  const rows = await tx
    .update(table)
    .set({ deletedAt: sql`now()`, updatedAt: sql`now()` })
    .where(
      and(
        eq(table.tenantId, page.tenantId),
        eq(table.source, page.source),
        inArray(table.externalId, [...externalIds]),
        isNull(table.deletedAt),
      ),
    )
    .returning({ id: table.id })
  return rows.length
}

function personRow(key: RowKey, r: CanonicalPerson, raw: Record<string, unknown>) {
  return {
    ...key,
    externalId: r.externalId,
    email: r.email ?? null,
    firstName: r.firstName ?? null,
    lastName: r.lastName ?? null,
    title: r.title ?? null,
    phone: r.phone ?? null,
    accountExternalId: r.accountExternalId ?? null,
    sourceData: raw,
  }
}

function accountRow(key: RowKey, r: CanonicalAccount, raw: Record<string, unknown>) {
  return {
    ...key,
    externalId: r.externalId,
    name: r.name,
    domain: r.domain ?? null,
    industry: r.industry ?? null,
    employeeCount: r.employeeCount ?? null,
    annualRevenue: r.annualRevenue ?? null,
    sourceData: raw,
  }
}

function activityRow(key: RowKey, r: CanonicalActivity, raw: Record<string, unknown>) {
  return {
    ...key,
    externalId: r.externalId,
    type: r.type,
    channel: r.channel ?? null,
    occurredAt: r.occurredAt,
    personExternalId: r.personExternalId ?? null,
    accountExternalId: r.accountExternalId ?? null,
    properties: r.properties ?? {},
    sourceData: raw,
  }
}

function quote(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}
