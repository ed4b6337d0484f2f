import { and, eq, getTableColumns, getTableName, sql, type SQL } from 'drizzle-orm'
import type { PgColumn } from 'drizzle-orm/pg-core'
import type { Tx } from '../../db/client.js'
import { copyIn } from '../../db/copy.js'
import { describePostgresError, isDataError, postgresError } from '../../db/errors.js'
import {
  accounts,
  activities,
  people,
  quarantine,
  streamState,
  syncRuns,
} from '../../db/schema/index.js'
import { AppError } from '../../shared/errors.js'
import type {
  CanonicalRecord,
  EntityType,
  FieldMapping,
  SourceRecord,
} from '../../shared/schemas.js'
import type { AnyConnector } from '../connectors/interface.js'
import { isPlainObject } from './mapping.js'
import {
  groupByEntityType,
  slicePreparer,
  type PreparedBatch,
  type PreparedRecords,
  type PreparedReject,
  type PreparedUpsert,
} from './prepare.js'
import { dedupeNewest } from './quality.js'
import { boundedMessage, storableValue } from './storable.js'
import { connectionLock } from './connection.js'
import { cursorUpsert, type StreamKey } from './stream-state.js'

/** Prepared records to write, from a sync page or a webhook event. */
export interface RecordsWrite {
  tenantId: string
  /** The connector type: the `source` of every row. */
  source: string
  /** The run the records came from (quarantined rejects point to it); null for webhook events. */
  runId: string | null
  /** The stream that read the records, stored on each row; null keeps what a row has. */
  stream: string | null
  /**
   * The records of each entity type: prepared, or already encoded by encodePage (a sync
   * encodes a page ahead of its transaction, and keeps only that).
   */
  batches: { [E in EntityType]: PreparedBatch<E> | EncodedBatch }
  /** Which batches stagePage already COPYed into this transaction's staging tables. */
  staged?: StagedRecords
  /** The batches' upserts, already written in this transaction by upsertRecords. */
  upserted?: UpsertedRecords
  /**
   * The records are probably all new (a sync whose last page was): each table's rows are first
   * tried as one plain INSERT, which skips the per-row check for an existing row and fails on
   * the first row the table already holds; then they are written as if this were not set.
   */
  expectNew?: boolean
}

/** Per entity type: whether its upserts wait in the staging table (see stagePage). */
export type StagedRecords = { readonly [E in EntityType]: boolean }

/**
 * One entity type's records as a write needs them: the upserts as COPY rows (copyText's UTF-8, a
 * chunk of whole lines per slice), their external ids in the same order, the deletions and the
 * rejects. Nothing else of the records is kept: a page waiting for its turn holds its bytes, not
 * its vendor objects, and a row Postgres refuses is read back from its COPY line.
 */
export interface EncodedBatch {
  readonly ids: readonly string[]
  readonly rows: readonly Buffer[]
  readonly deletions: readonly string[]
  readonly rejects: readonly PreparedReject[]
}

/** Every entity type's EncodedBatch. */
export type EncodedRecords = { readonly [E in EntityType]: EncodedBatch }

/** One page's prepared records, written with its stream's new cursor in one transaction. */
export interface PageWrite extends Omit<RecordsWrite, 'stream'> {
  runId: string
  stream: StreamKey
  /** The partition read ('' for a stream without partitions). */
  partition: string
  cursor: string | null
  /** The page was the partition's last: the run has read it to its end. */
  finished: boolean
  /**
   * The page is its run's last and ends it: the run is marked succeeded in the statement that
   * adds the page's counts (see persistPage).
   */
  endsRun?: boolean
}

/** A sync_runs row. */
export type SyncRunRow = typeof syncRuns.$inferSelect

export interface PageCounts {
  created: number
  updated: number
  deleted: number
  errors: number
}

/**
 * Writes one page: its records (persistRecords), the stream's cursor and the run's counters.
 * The caller's transaction makes it all-or-nothing, so a crash resumes from the last committed
 * cursor. A page that ends its run (`endsRun`) also marks the run succeeded and takes the
 * connection's row lock (see lockConnection), and returns the run's row as it now
 * stands (`run`) for the caller to finish with.
 *
 * The cursor, the counters and the lock are one statement: the cursor's upsert and the lock are
 * CTEs of the run's update.
 */
export async function persistPage(
  tx: Tx,
  page: PageWrite,
): Promise<PageCounts & { run?: SyncRunRow }> {
  const counts = await persistRecords(tx, { ...page, stream: page.stream.stream })
  const cursor = tx.$with('cursor').as(
    cursorUpsert(tx, page.stream, {
      partition: page.partition,
      cursor: page.cursor,
      ...(page.finished ? { finishedBy: page.runId } : {}),
    }).returning({ id: streamState.id }),
  )
  const counters = {
    pages: sql`${syncRuns.pages} + 1`,
    created: sql`${syncRuns.created} + ${counts.created}`,
    updated: sql`${syncRuns.updated} + ${counts.updated}`,
    errors: sql`${syncRuns.errors} + ${counts.errors}`,
    deleted: sql`${syncRuns.deleted} + ${counts.deleted}`,
  }
  if (!page.endsRun) {
    await tx.with(cursor).update(syncRuns).set(counters).where(eq(syncRuns.id, page.runId))
    return counts
  }
  const { lock, taken } = connectionLock(tx, page.stream.connectorId)
  const [run] = await tx
    .with(cursor, lock)
    .update(syncRuns)
    .set({ ...counters, status: 'succeeded', finishedAt: sql`now()` })
    .where(and(eq(syncRuns.id, page.runId), taken))
    .returning()
  if (!run) throw new AppError('internal', `Sync run ${page.runId} does not exist.`)
  return { ...counts, run }
}

/**
 * The connector's own rows for the records just written (SideTableCapability), in the same
 * transaction; only for the records the quality step accepted.
 */
export async function persistSideTables(
  tx: Tx,
  connector: AnyConnector,
  write: { tenantId: string; records: readonly SourceRecord[]; batches: RecordsWrite['batches'] },
): Promise<void> {
  if (!connector.sideTables || write.records.length === 0) return
  const accepted = new Set<string>()
  for (const entityType of ['person', 'account', 'activity'] as const) {
    for (const id of upsertIds(write.batches[entityType])) accepted.add(id)
  }
  // Cleaned like the raw payloads the pipeline stores: no NUL, no lone surrogate.
  const records = write.records.map((r) => ({
    ...r,
    data: storableValue(r.data) as Record<string, unknown>,
  }))
  await connector.sideTables.persist(tx, { tenantId: write.tenantId, records, accepted })
}

/**
 * COPYs the records' upserts into the transaction's staging tables, each table in a savepoint,
 * and says which it took: persistRecords, later in the same transaction, moves them into their
 * tables. A sync stages its next page while the current one is still being written, so Postgres
 * reads one page's rows while it writes the other's. A batch that COPY refuses (a value Postgres
 * cannot store) is left unstaged, and persistRecords writes it as if stagePage had not run.
 */
export async function stagePage(
  tx: Tx,
  write: Pick<RecordsWrite, 'batches'>,
): Promise<StagedRecords> {
  const stage = async <E extends EntityType>(
    target: UpsertTarget<E>,
    batch: PreparedBatch<E> | EncodedBatch,
  ): Promise<boolean> => {
    const { ids, rows } = encodedBatch(target, batch)
    if (ids.length === 0) return false
    try {
      await tx.transaction((savepoint) => copyStaged(savepoint, target, ids.length, rows))
      return true
    } catch (err) {
      if (!isDataError(err)) throw err
      return false
    }
  }
  const { person, account, activity } = write.batches
  return {
    person: await stage(personTarget, person),
    account: await stage(accountTarget, account),
    activity: await stage(activityTarget, activity),
  }
}

/**
 * Writes prepared records: a set-based upsert per table keyed by (tenant_id, source,
 * external_id), soft deletes and quarantined rejects, in the caller's transaction. When Postgres
 * refuses a value in a table's upsert (a data error), that table's records are written one by
 * one instead, and those it refuses are quarantined with the rest of the rejects.
 */
export async function persistRecords(tx: Tx, write: RecordsWrite): Promise<PageCounts> {
  const counts: PageCounts = { created: 0, updated: 0, deleted: 0, errors: 0 }
  const { person, account, activity } = write.batches
  const upserted = write.upserted ?? (await upsertRecords(tx, write))
  for (const result of Object.values(upserted)) {
    counts.created += result.created
    counts.updated += result.updated
  }
  counts.deleted += await markDeleted(tx, personTarget, write, person.deletions)
  counts.deleted += await markDeleted(tx, accountTarget, write, account.deletions)
  counts.deleted += await markDeleted(tx, activityTarget, write, activity.deletions)

  const rejects = (['person', 'account', 'activity'] as const).flatMap((entityType) =>
    [...write.batches[entityType].rejects, ...upserted[entityType].refused].map((r) => ({
      tenantId: write.tenantId,
      connector: write.source,
      syncRunId: write.runId,
      entityType,
      externalId: r.externalId,
      // The quality step already cleaned these; a caller that skipped it must not fail the page.
      reason: boundedMessage(`${r.field}: ${r.reason}`),
      rawPayload: storableValue(r.raw) as Record<string, unknown>,
    })),
  )
  for (const chunk of chunks(rejects, 1000)) await tx.insert(quarantine).values(chunk)
  counts.errors = rejects.length
  return counts
}

/**
 * The upserts of persistRecords on their own, which it then leaves out (`upserted`): a sync
 * writes a page's rows while the page before it is still committing, and the rest of the page
 * (deletions, rejects, its cursor) once that one has.
 */
export async function upsertRecords(
  tx: Tx,
  write: Omit<RecordsWrite, 'upserted'>,
): Promise<UpsertedRecords> {
  const { person, account, activity } = write.batches
  const staged = write.staged ?? { person: false, account: false, activity: false }
  return {
    person: await upsertRows(tx, personTarget, write, person, staged.person),
    account: await upsertRows(tx, accountTarget, write, account, staged.account),
    activity: await upsertRows(tx, activityTarget, write, activity, staged.activity),
  }
}

/** Per entity type, what upsertRecords wrote. */
export type UpsertedRecords = { readonly [E in EntityType]: Upserted }

type RecordTable = typeof people | typeof accounts | typeof activities

/** A written column: its Postgres name and type, and how a prepared record fills it. */
interface ValueColumn<E extends EntityType> {
  name: string
  /** The canonical field it holds (the table's property name), for quarantine reasons. */
  field: string
  /** The SQL type of the column. */
  type: string
  /** jsonb: its values are JSON documents, not text to cast. */
  json: boolean
  value: (record: CanonicalRecord<E>, raw: Record<string, unknown>) => unknown
}

/** How one entity type lands in its table; the statements are built once. */
interface UpsertTarget<E extends EntityType> {
  /** The entity type the table holds. */
  entity: E
  columns: Array<ValueColumn<E>>
  /**
   * Creates the session's staging table for this table if it is missing (a temporary table,
   * emptied at every commit: the external id and the written columns, typed as in the table)
   * and empties it.
   */
  stage: Statement
  /** COPY … FROM STDIN into the staging table, in text format, columns in `columns` order. */
  copy: string
  /** INSERT … SELECT of every staged row ($1 tenant, $2 source, $3 stream), none checked. */
  insertAll: Statement
  /**
   * INSERT … SELECT of the staged rows the table does not hold yet ($1 tenant, $2 source,
   * $3 stream): a plain insert, the cheapest way in, and on a first sync every row.
   */
  insertNew: Statement
  /** INSERT … SELECT FROM the staging table ON CONFLICT … RETURNING (xmax = 0). */
  upsert: Statement
  /** The same for one record, one typed parameter per value ($1 tenant, $2 source, $3 id). */
  upsertOne: Statement
  /** Soft-deletes the live rows whose external id is in the array. */
  softDelete: Statement
}

/** Columns an upsert leaves to the conflict key, the defaults or the bookkeeping. */
const KEY_COLUMNS = new Set(['id', 'tenantId', 'source', 'externalId', 'createdAt'])
const BOOKKEEPING = new Set(['updatedAt', 'deletedAt', 'stream'])

/**
 * The statements for one table. `values` must name every column of the table apart from the
 * key, the defaults and the bookkeeping: checked once, here, so that a schema change cannot
 * leave a column unwritten or uncompared.
 */
function upsertTarget<E extends EntityType>(
  entity: E,
  table: RecordTable,
  values: Array<[PgColumn, ValueColumn<E>['value']]>,
): UpsertTarget<E> {
  const name = getTableName(table)
  const byProp: Record<string, PgColumn> = getTableColumns(table)
  const column = (prop: string): string => quote(byProp[prop]!.name)
  const propOf = (col: PgColumn): string =>
    Object.keys(byProp).find((prop) => byProp[prop] === col) ?? col.name
  const columns: Array<ValueColumn<E>> = values.map(([col, value]) => ({
    name: col.name,
    field: propOf(col),
    type: col.getSQLType(),
    json: col.getSQLType() === 'jsonb',
    value,
  }))
  const expected = Object.entries(byProp)
    .filter(([prop]) => !KEY_COLUMNS.has(prop) && !BOOKKEEPING.has(prop))
    .map(([, col]) => col.name)
    .sort()
    .join(', ')
  const given = columns
    .map((c) => c.name)
    .sort()
    .join(', ')
  if (expected !== given) {
    throw new Error(`persist: ${name} has the columns ${expected}, but the upsert writes ${given}`)
  }

  const t = quote(name)
  const key = [column('tenantId'), column('source'), column('externalId')]
  const data = columns.map((c) => quote(c.name))
  const deletedAt = column('deletedAt')
  const stream = column('stream')
  // The page's rows reach Postgres as one COPY into a staging table (its fastest way in), and
  // one INSERT … SELECT moves them into the table, so unchanged rows can still be left alone and
  // created and updated rows told apart.
  const staging = `pg_temp.${quote(`gtm_stage_${name}`)}`
  const stagedColumns = [column('externalId'), ...data]
  const stage =
    `create temp table if not exists ${staging} ` +
    `(${[`${column('externalId')} text`, ...columns.map((c) => `${quote(c.name)} ${c.type}`)].join(', ')}) ` +
    `on commit delete rows; delete from ${staging}`
  const copy = `copy ${staging} (${stagedColumns.join(', ')}) from stdin`
  const into = `insert into ${t} (${[...key, ...data, stream].join(', ')}) `
  const selectStaged =
    `select $1::text, $2::text, ${stagedColumns.map((c) => `s.${c}`).join(', ')}, $3::text ` +
    `from ${staging} s `
  const insertStaged = into + selectStaged
  // One index probe per staged row: OFFSET 0 keeps the NOT EXISTS a per-row subquery, so the
  // plan cannot turn into a scan of the tenant's rows when the table's statistics are behind.
  const insertNew =
    into +
    selectStaged +
    `where not exists (select 1 from ${t} x where x.${key[0]} = $1::text ` +
    `and x.${key[1]} = $2::text and x.${key[2]} = s.${key[2]} offset 0)`
  // The stream is the last parameter, after the columns.
  const streamParam = `$${columns.length + 4}::text`
  // Typed parameters: a value Postgres cannot read fails naming its parameter, hence its field.
  const upsertOne =
    into +
    `values ($1::text, $2::text, $3::text, ${columns.map((c, i) => `$${i + 4}::${c.type}`).join(', ')}, ${streamParam}) `
  const onConflict =
    `on conflict (${key.join(', ')}) do update set ` +
    [
      ...data.map((c) => `${c} = excluded.${c}`),
      `${column('updatedAt')} = now()`,
      `${deletedAt} = null`,
      `${stream} = coalesce(excluded.${stream}, ${t}.${stream})`,
    ].join(', ') +
    // Only a real change (a revival of a deleted row, a record another stream now reads) is an
    // update.
    ` where (${data.map((c) => `${t}.${c}`).join(', ')}) is distinct from ` +
    `(${data.map((c) => `excluded.${c}`).join(', ')}) or ${t}.${deletedAt} is not null ` +
    `or ${t}.${stream} is distinct from coalesce(excluded.${stream}, ${t}.${stream}) ` +
    `returning (xmax = 0) as inserted`
  const softDelete =
    `update ${t} set ${deletedAt} = now(), ${column('updatedAt')} = now() ` +
    `where ${key[0]} = $1::text and ${key[1]} = $2::text and ${key[2]} = any($3::text[]) ` +
    `and ${deletedAt} is null returning ${column('id')}`
  return {
    entity,
    columns,
    stage: statementTemplate(stage),
    copy,
    insertAll: statementTemplate(insertStaged),
    insertNew: statementTemplate(insertNew),
    upsert: statementTemplate(insertStaged + onConflict),
    upsertOne: statementTemplate(upsertOne + onConflict),
    softDelete: statementTemplate(softDelete),
  }
}

const orNull = (value: unknown): unknown => value ?? null

const personTarget = upsertTarget('person', people, [
  [people.email, (r) => orNull(r.email)],
  [people.firstName, (r) => orNull(r.firstName)],
  [people.lastName, (r) => orNull(r.lastName)],
  [people.title, (r) => orNull(r.title)],
  [people.phone, (r) => orNull(r.phone)],
  [people.accountExternalId, (r) => orNull(r.accountExternalId)],
  [people.sourceData, (_r, raw) => raw],
])

const accountTarget = upsertTarget('account', accounts, [
  [accounts.name, (r) => r.name],
  [accounts.domain, (r) => orNull(r.domain)],
  [accounts.industry, (r) => orNull(r.industry)],
  [accounts.employeeCount, (r) => orNull(r.employeeCount)],
  [accounts.annualRevenue, (r) => orNull(r.annualRevenue)],
  [accounts.sourceData, (_r, raw) => raw],
])

const activityTarget = upsertTarget('activity', activities, [
  [activities.type, (r) => r.type],
  [activities.channel, (r) => orNull(r.channel)],
  [activities.occurredAt, (r) => r.occurredAt.toISOString()],
  [activities.personExternalId, (r) => orNull(r.personExternalId)],
  [activities.accountExternalId, (r) => orNull(r.accountExternalId)],
  [activities.properties, (r) => r.properties ?? {}],
  [activities.sourceData, (_r, raw) => raw],
])

export interface Upserted {
  created: number
  updated: number
  /** Records Postgres refused, with the field and its error. */
  refused: PreparedReject[]
}

/**
 * One INSERT … ON CONFLICT per table and page, in a savepoint. When Postgres refuses a value in
 * it (a data error, SQLSTATE class 22 or 23), the records are written one by one instead, each
 * in a savepoint of its own, and the ones refused are returned. Other errors fail the page.
 */
async function upsertRows<E extends EntityType>(
  tx: Tx,
  target: UpsertTarget<E>,
  page: RecordsWrite,
  given: PreparedBatch<E> | EncodedBatch,
  staged: boolean,
): Promise<Upserted> {
  const batch = encodedBatch(target, given)
  if (batch.ids.length === 0) return { created: 0, updated: 0, refused: [] }
  // Staged before these savepoints, the rows outlive a rollback to them; else each try stages.
  const rows = staged ? undefined : batch.rows
  // Cheapest first, the upsert last. A unique violation means the table holds a row the try
  // took for new: the next one sorts it out. A plain insert meets one when the page was not all
  // new; the check for new rows, when another writer (a webhook event) inserted one of these
  // records after it.
  const inserts: UpsertWay[] = page.expectNew ? ['insertAll', 'insertNew'] : ['insertNew']
  const write = async (way: UpsertWay): Promise<Upserted> => ({
    ...(await tx.transaction((savepoint) =>
      upsertSet(savepoint, target, page, batch.ids.length, rows, way),
    )),
    refused: [],
  })
  try {
    for (const way of inserts) {
      try {
        return await write(way)
      } catch (err) {
        if (postgresError(err).code !== UNIQUE_VIOLATION) throw err
      }
    }
    return await write('upsert')
  } catch (err) {
    if (!isDataError(err)) throw err
    return upsertOneByOne(tx, target, page, batch)
  }
}

/**
 * How upsertSet moves staged rows into their table: all by a plain insert (each one new); the
 * new ones by a plain insert and the rest by the upsert; or all by the upsert.
 */
type UpsertWay = 'insertAll' | 'insertNew' | 'upsert'

const UNIQUE_VIOLATION = '23505'

/**
 * The page's rows COPYed into the staging table, then moved into the table the `way` says (see
 * UpsertWay); the upsert finds rows just inserted unchanged. Unchanged rows are left alone and
 * not counted.
 */
async function upsertSet<E extends EntityType>(
  tx: Tx,
  target: UpsertTarget<E>,
  page: RecordsWrite,
  all: number,
  rows: readonly Buffer[] | undefined,
  way: UpsertWay,
): Promise<{ created: number; updated: number }> {
  if (rows) await copyStaged(tx, target, all, rows)
  const params = [page.tenantId, page.source, page.stream]
  let created = 0
  if (way !== 'upsert') {
    const inserted = await tx.execute(target[way](params))
    if (typeof inserted.rowCount !== 'number') throw new Error('persist: INSERT reported no count')
    created = inserted.rowCount
    if (way === 'insertAll' && created !== all) {
      throw new Error(`persist: INSERT took ${created} rows of ${all}`)
    }
    if (created === all) return { created, updated: 0 }
  }
  const result = await tx.execute<{ inserted: boolean }>(target.upsert(params))
  let upserted = 0
  for (const row of result.rows) if (row.inserted) upserted++
  return { created: created + upserted, updated: result.rows.length - upserted }
}

/** The batch as encodePage leaves it: as it is if it was encoded, else encoded now. */
function encodedBatch<E extends EntityType>(
  target: UpsertTarget<E>,
  batch: PreparedBatch<E> | EncodedBatch,
): EncodedBatch {
  return 'upserts' in batch ? encodeBatch(target, batch, COPY_CHUNK) : batch
}

/** Records to a chunk of COPY rows when a batch is encoded whole (see encodePrepared). */
const COPY_CHUNK = 1_000

/**
 * Batches a caller prepared itself (prepareRecords) encoded as encodePage encodes a page's,
 * `chunk` records to a chunk of COPY rows.
 */
export function encodePrepared(batches: PreparedRecords, chunk: number): EncodedRecords {
  return {
    person: encodeBatch(personTarget, batches.person, chunk),
    account: encodeBatch(accountTarget, batches.account, chunk),
    activity: encodeBatch(activityTarget, batches.activity, chunk),
  }
}

function encodeBatch<E extends EntityType>(
  target: UpsertTarget<E>,
  { upserts, deletions, rejects }: PreparedBatch<E>,
  chunk: number,
): EncodedBatch {
  const rows: Buffer[] = []
  for (let i = 0; i < upserts.length; i += chunk) {
    const text = copyText(target.columns, upserts, i, Math.min(i + chunk, upserts.length))
    rows.push(Buffer.from(text, 'utf8'))
  }
  return { ids: externalIds(upserts), rows, deletions, rejects }
}

/** The external ids of a batch's upserts. */
function upsertIds(batch: PreparedBatch | EncodedBatch): readonly string[] {
  return 'upserts' in batch ? externalIds(batch.upserts) : batch.ids
}

function externalIds(upserts: ReadonlyArray<PreparedUpsert>): string[] {
  return upserts.map((upsert) => upsert.record.externalId)
}

/**
 * Empties the session's staging table for `target` (creating it if needed) and COPYs `rows`,
 * which hold `count` lines.
 */
async function copyStaged<E extends EntityType>(
  tx: Tx,
  target: UpsertTarget<E>,
  count: number,
  rows: readonly Buffer[],
): Promise<void> {
  await tx.execute(target.stage([]))
  const copied = await copyIn(tx, target.copy, rows)
  if (copied !== count) {
    throw new Error(`persist: COPY took ${copied} rows of ${count}`)
  }
}

/**
 * A page's records mapped, checked, deduped and encoded as persistRecords writes them
 * (EncodedBatch). `read(max)` hands over the page's next records, none at the end; each slice of
 * `slice` records is prepared and encoded at once, and `pause()` is awaited between slices, so
 * that the write of the page before goes on meanwhile. Only the encoded rows and what dedupe needs
 * outlive a slice: a record and its canonical form are let go as soon as its line is written.
 */
export async function encodePage(
  read: (max: number) => readonly SourceRecord[],
  mappingsFor: (entityType: EntityType) => readonly FieldMapping[],
  pause: () => Promise<void>,
  slice: number,
): Promise<EncodedRecords> {
  const encoders: { [E in EntityType]?: PageEncoder } = {}
  for (;;) {
    const records = read(slice)
    if (records.length === 0) break
    for (const [entity, group] of groupByEntityType(records)) {
      const encoder = (encoders[entity] ??= encoderOf(entity, mappingsFor(entity)))
      encoder.add(group)
    }
    await pause()
  }
  const finish = (entity: EntityType): EncodedBatch =>
    encoders[entity]?.finish() ?? { ids: [], rows: [], deletions: [], rejects: [] }
  return { person: finish('person'), account: finish('account'), activity: finish('activity') }
}

function encoderOf(entity: EntityType, mappings: readonly FieldMapping[]): PageEncoder {
  switch (entity) {
    case 'person':
      return pageEncoder(personTarget, mappings)
    case 'account':
      return pageEncoder(accountTarget, mappings)
    case 'activity':
      return pageEncoder(activityTarget, mappings)
  }
}

interface PageEncoder {
  /** Prepares and encodes a slice of the page's records of the encoder's entity type. */
  add(records: readonly SourceRecord[]): void
  /** The page's batch: its records deduped (dedupeNewest), their lines in the page's order. */
  finish(): EncodedBatch
}

/** What dedupe needs of a record: its id, its stamp, and its COPY line (-1 for a deletion). */
interface EncodedEntry {
  externalId: string
  modifiedAt: SourceRecord['modifiedAt']
  line: number
}

function pageEncoder<E extends EntityType>(
  target: UpsertTarget<E>,
  mappings: readonly FieldMapping[],
): PageEncoder {
  const prepare = slicePreparer(target.entity, mappings)
  const entries: EncodedEntry[] = []
  const rejects: PreparedReject[] = []
  const rows: Buffer[] = []
  let lines = 0
  return {
    add: (records) => {
      const slice = prepare(records)
      const upserts: Array<PreparedUpsert<E>> = []
      for (const { externalId, modifiedAt, upsert } of slice.outcomes) {
        entries.push({ externalId, modifiedAt, line: upsert ? lines + upserts.length : -1 })
        if (upsert) upserts.push(upsert)
      }
      for (const reject of slice.rejects) rejects.push(reject)
      if (upserts.length === 0) return
      // The slice's text turned into the bytes COPY sends at once, while it is small.
      rows.push(Buffer.from(copyText(target.columns, upserts), 'utf8'))
      lines += upserts.length
    },
    finish: () => {
      // Deletions and upserts of one id compete: whichever the source changed last is the truth.
      const winners = dedupeNewest(
        entries,
        (entry) => entry.externalId,
        (entry) => entry.modifiedAt,
      )
      const ids: string[] = []
      const deletions: string[] = []
      const kept: number[] = []
      for (const { externalId, line } of winners) {
        if (line < 0) {
          deletions.push(externalId)
        } else {
          ids.push(externalId)
          kept.push(line)
        }
      }
      return { ids, rows: kept.length === lines ? rows : keptLines(rows, kept), deletions, rejects }
    },
  }
}

/**
 * The COPY lines numbered in `kept` (ascending, counted across `rows`), as one chunk. A newline
 * byte only ever ends a line: COPY text escapes the newlines in values.
 */
function keptLines(rows: readonly Buffer[], kept: readonly number[]): Buffer[] {
  const pieces: Buffer[] = []
  let line = 0
  let next = 0
  for (const chunk of rows) {
    let start = 0
    while (start < chunk.length && next < kept.length) {
      const end = chunk.indexOf(NEWLINE, start) + 1
      if (line === kept[next]) {
        pieces.push(chunk.subarray(start, end))
        next++
      }
      line++
      start = end
    }
  }
  return pieces.length > 0 ? [Buffer.concat(pieces)] : []
}

const NEWLINE = 0x0a

/**
 * Records `from` to `to` (excluded) as COPY text (one line each: the external id, then the
 * columns, tab-separated): null as \N, JSON columns as their JSON text, and a backslash, tab,
 * newline or carriage return escaped. Text Postgres cannot store (a NUL) fails the COPY like
 * any refused value.
 */
function copyText<E extends EntityType>(
  columns: ReadonlyArray<ValueColumn<E>>,
  upserts: ReadonlyArray<PreparedUpsert<E>>,
  from = 0,
  to = upserts.length,
): string {
  // The values are joined once: appended one by one, the text would be a tree of partial strings
  // that V8 copies into one again before it can be encoded.
  const parts: string[] = []
  for (let i = from; i < to; i++) {
    const { record, raw } = upserts[i]!
    parts.push(copyField(record.externalId))
    for (const column of columns) {
      const value = column.value(record, raw)
      parts.push('\t', column.json ? copyJson(value) : copyField(value))
    }
    parts.push('\n')
  }
  return parts.join('')
}

const COPY_SPECIAL = /[\\\t\n\r]/
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' }

function copyEscape(text: string): string {
  return COPY_SPECIAL.test(text) ? text.replace(/[\\\t\n\r]/g, (c) => COPY_ESCAPES[c]!) : text
}

/** A column value as COPY text; numbers and objects as their JSON would have them. */
function copyField(value: unknown): string {
  if (value === null || value === undefined) return '\\N'
  if (typeof value === 'string') return copyEscape(value)
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : '\\N'
  return copyJson(value)
}

/** JSON text escapes its own tabs, line breaks and carriage returns: only a backslash is left. */
function copyJson(value: unknown): string {
  const json = JSON.stringify(value) as string | undefined
  if (json === undefined) return '\\N'
  return json.includes('\\') ? json.replaceAll('\\', '\\\\') : json
}

/**
 * The fallback: each record in a savepoint, so a refused one costs only itself. The records are
 * read back from their COPY lines, each value as the text COPY would have read.
 */
async function upsertOneByOne<E extends EntityType>(
  tx: Tx,
  target: UpsertTarget<E>,
  page: RecordsWrite,
  batch: EncodedBatch,
): Promise<Upserted> {
  const result: Upserted = { created: 0, updated: 0, refused: [] }
  for (const [externalId, ...values] of copyLines(batch.rows)) {
    try {
      const written = await tx.transaction((savepoint) =>
        savepoint.execute<{ inserted: boolean }>(
          target.upsertOne([page.tenantId, page.source, externalId, ...values, page.stream]),
        ),
      )
      for (const row of written.rows) {
        if (row.inserted) result.created++
        else result.updated++
      }
    } catch (err) {
      if (!isDataError(err)) throw err
      const field = refusedField(target, err)
      const what = field === 'record' ? 'the record' : `field "${field}"`
      const reason = `${what} was refused: ${describePostgresError(err)}`
      const raw = rawPayload(values[target.columns.findIndex((c) => c.field === 'sourceData')])
      result.refused.push({ externalId: externalId ?? null, field, reason, raw })
    }
  }
  return result
}

/** The lines of COPY text (copyText's), each split into its values: null for \N, else unescaped. */
function copyLines(rows: readonly Buffer[]): Array<Array<string | null>> {
  const lines: Array<Array<string | null>> = []
  for (const chunk of rows) {
    const text = chunk.toString('utf8')
    let start = 0
    for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
      lines.push(text.slice(start, end).split('\t').map(copyValue))
      start = end + 1
    }
  }
  return lines
}

/** copyEscape's escapes read back: the letter after the backslash, and what it stands for. */
const COPY_UNESCAPES: Record<string, string> = Object.fromEntries(
  Object.entries(COPY_ESCAPES).map(([char, escape]) => [escape.slice(1), char]),
)

/** One COPY field's value: copyField and copyJson undone. */
function copyValue(field: string): string | null {
  if (field === '\\N') return null
  return field.includes('\\')
    ? field.replace(/\\([\\tnr])/g, (_, c: string) => COPY_UNESCAPES[c]!)
    : field
}

/** The vendor payload of a refused record, from its source_data column's JSON text. */
function rawPayload(json: string | null | undefined): Record<string, unknown> {
  if (!json) return {}
  const value: unknown = JSON.parse(json)
  return isPlainObject(value) ? value : {}
}

/** The canonical field a refusal names, through its parameter or column; else 'record'. */
function refusedField<E extends EntityType>(target: UpsertTarget<E>, err: unknown): string {
  const { parameter, column } = postgresError(err)
  if (parameter === 3) return 'externalId'
  const refused =
    parameter === undefined
      ? target.columns.find((c) => c.name === column)
      : target.columns[parameter - 4]
  return refused?.field ?? 'record'
}

async function markDeleted<E extends EntityType>(
  tx: Tx,
  target: UpsertTarget<E>,
  page: RecordsWrite,
  externalIds: readonly string[],
): Promise<number> {
  if (externalIds.length === 0) return 0
  const result = await tx.execute(target.softDelete([page.tenantId, page.source, externalIds]))
  return result.rows.length
}

/** Fills a statement's `$n` placeholders; each value (an array too) is one parameter. */
type Statement = (params: readonly unknown[]) => SQL

function statementTemplate(text: string): Statement {
  const parts = text.split(/\$(\d+)/)
  return (params) =>
    sql.join(
      parts.map((part, i) =>
        i % 2 === 0 ? sql.raw(part) : sql`${sql.param(params[Number(part) - 1])}`,
      ),
    )
}

function quote(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = []
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size))
  return out
}
