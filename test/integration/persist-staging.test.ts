import { asc, sql } from 'drizzle-orm'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { accounts, activities } from '../../db/schema/index.js'
import { withTenant } from '../../db/tenant.js'
import type { EntityType } from '../../shared/schemas.js'
import {
  persistPage,
  persistRecords,
  type PageWrite,
  type RecordsWrite,
} from '../../src-agent/pipeline/persist.js'
import type { PreparedBatch, PreparedUpsert } from '../../src-agent/pipeline/prepare.js'
import { startRun } from '../../src-agent/pipeline/run-sync.js'
import { startPagerFake, type PagerFake } from '../fakes/pager.js'
import { agentFixture, connectedTenant, type AgentFixture } from '../helpers/agent.js'
import { ownerDb } from '../helpers/db.js'

/**
 * A page reaches its tables through a staging table (COPY, then an INSERT … SELECT of every row
 * when the page is taken for new, else of the rows that are new and, when some were not, one
 * INSERT … SELECT … ON CONFLICT): every value lands
 * byte for byte, unchanged rows stay untouched, and created and updated rows are counted
 * exactly, also when another writer inserts one of the page's records meanwhile.
 */
describe('persisting a page through the staging table', () => {
  let agent: AgentFixture
  let fake: PagerFake
  let tenantId: string
  let statements: string[]
  let page: (cursor: string, batches: Partial<PageWrite['batches']>) => PageWrite

  beforeEach(async () => {
    statements = []
    agent = agentFixture({ onQuery: (q) => statements.push(q) })
    fake = await startPagerFake({ accounts: 1 })
    tenantId = await connectedTenant(agent, fake)
    const { runId, connectorId } = await startRun(agent, { tenantId, connectorType: 'test-pages' })
    page = (cursor, batches) => ({
      tenantId,
      source: 'test-pages',
      runId,
      stream: { tenantId, connectorId, stream: 'records' },
      partition: '',
      cursor,
      finished: false,
      batches: { person: batch(), account: batch(), activity: batch(), ...batches },
    })
  })
  afterEach(async () => {
    await fake.close()
    await agent.close()
  })

  const account = (
    externalId: string,
    fields: Record<string, unknown> = {},
    raw: Record<string, unknown> = { Id: externalId },
  ): PreparedUpsert<'account'> => ({
    record: { externalId, name: `Account ${externalId}`, ...fields },
    raw,
  })
  const batch = <E extends EntityType>(
    upserts: Array<PreparedUpsert<E>> = [],
    deletions: string[] = [],
  ): PreparedBatch<E> => ({ upserts, deletions, rejects: [] })
  const write = (p: PageWrite) => withTenant(agent.handle.db, tenantId, (tx) => persistPage(tx, p))
  /** Each account's row version (xmin changes whenever the row is written) and columns. */
  const accountRows = () =>
    withTenant(agent.handle.db, tenantId, async (tx) => {
      const rows = await tx.select().from(accounts).orderBy(asc(accounts.externalId))
      const versions = await tx.execute<{ external_id: string; xmin: string }>(
        sql`select external_id, xmin::text from accounts`,
      )
      const xmin = new Map(versions.rows.map((r) => [r.external_id, r.xmin]))
      return rows.map((row) => ({ ...row, xmin: xmin.get(row.externalId) }))
    })

  it('lands text with tabs, line breaks, backslashes and \\N byte for byte, JSON included', async () => {
    const odd = [
      'Tab\there',
      'Line\nbreak\r\nand CR\r',
      'Back\\slash \\N \\t \\\\',
      '\\N',
      'Quote " and \'',
      '👩🏽‍💻 شركة עברית',
      '',
    ]
    const upserts = odd.map((text, i) =>
      account(
        `a-${i}`,
        { name: `${text}!`, industry: text, domain: i === 0 ? null : undefined },
        { Id: `a-${i}`, Name: text, nested: { list: [text, null, 1.25, true], [text]: text } },
      ),
    )
    const occurredAt = new Date('2026-03-04T05:06:07.089Z')
    const activity: PreparedUpsert<'activity'> = {
      record: {
        externalId: 'e-1',
        type: 'email\topen',
        occurredAt,
        properties: { s: 'a\tb\\n\nc', n: [1.5, null, -0], deep: { '\\N': '\\' } },
      },
      raw: { id: 'e-1', text: 'x\\y\tz' },
    }
    statements.length = 0
    const counts = await write(page('1', { account: batch(upserts), activity: batch([activity]) }))
    expect(counts).toEqual({ created: 8, updated: 0, deleted: 0, errors: 0 })
    // Through the staging tables, with no record-by-record fallback: COPY took every value.
    const count = (prefix: string) => statements.filter((q) => q.startsWith(prefix)).length
    expect(count('copy pg_temp."gtm_stage_accounts"')).toBe(1)
    expect(count('copy pg_temp."gtm_stage_activities"')).toBe(1)
    expect(count('insert into "accounts"')).toBe(1)
    expect(count('insert into "activities"')).toBe(1)
    expect(count('rollback to savepoint')).toBe(0)

    const rows = await accountRows()
    expect(rows.map((r) => [r.externalId, r.name, r.industry, r.domain, r.sourceData])).toEqual(
      odd.map((text, i) => [
        `a-${i}`,
        `${text}!`,
        text,
        null,
        { Id: `a-${i}`, Name: text, nested: { list: [text, null, 1.25, true], [text]: text } },
      ]),
    )
    const [stored] = await withTenant(agent.handle.db, tenantId, (tx) =>
      tx.select().from(activities),
    )
    expect(stored).toMatchObject({
      externalId: 'e-1',
      type: 'email\topen',
      occurredAt,
      properties: { s: 'a\tb\\n\nc', n: [1.5, null, 0], deep: { '\\N': '\\' } },
      sourceData: { id: 'e-1', text: 'x\\y\tz' },
      stream: 'records',
    })
  })

  it('leaves unchanged rows untouched and counts created and updated rows exactly', async () => {
    const first = [
      account('a-1', { employeeCount: 10, annualRevenue: 1000.5 }),
      account('a-2'),
      account('a-3'),
    ]
    expect(await write(page('1', { account: batch(first) }))).toEqual({
      created: 3,
      updated: 0,
      deleted: 0,
      errors: 0,
    })
    expect(await write(page('2', { account: batch([], ['a-3']) }))).toMatchObject({
      deleted: 1,
    })
    const before = new Map((await accountRows()).map((r) => [r.externalId, r]))

    // a-1 unchanged, a-2 renamed, a-3 the same values but deleted (a revival), a-4 new.
    const counts = await write(
      page('3', {
        account: batch([
          account('a-1', { employeeCount: 10, annualRevenue: 1000.5 }),
          account('a-2', { name: 'Renamed' }),
          account('a-3'),
          account('a-4'),
        ]),
      }),
    )
    expect(counts).toEqual({ created: 1, updated: 2, deleted: 0, errors: 0 })
    const after = new Map((await accountRows()).map((r) => [r.externalId, r]))
    // Untouched: the same row version, the same updated_at.
    expect(after.get('a-1')!.xmin).toBe(before.get('a-1')!.xmin)
    expect(after.get('a-1')!.updatedAt).toEqual(before.get('a-1')!.updatedAt)
    expect(after.get('a-2')!.xmin).not.toBe(before.get('a-2')!.xmin)
    expect(after.get('a-2')!.name).toBe('Renamed')
    expect(after.get('a-3')!.deletedAt).toBeNull()
    expect(after.get('a-4')!.stream).toBe('records')

    // A write without a stream (a webhook event) keeps the row's stream and, unchanged, the row.
    const event: RecordsWrite = {
      tenantId,
      source: 'test-pages',
      runId: null,
      stream: null,
      batches: {
        person: batch(),
        account: batch([account('a-1', { employeeCount: 10, annualRevenue: 1000.5 })]),
        activity: batch(),
      },
    }
    const eventCounts = await withTenant(agent.handle.db, tenantId, (tx) =>
      persistRecords(tx, event),
    )
    expect(eventCounts).toEqual({ created: 0, updated: 0, deleted: 0, errors: 0 })
    const last = (await accountRows()).find((r) => r.externalId === 'a-1')!
    expect(last).toMatchObject({ stream: 'records', xmin: before.get('a-1')!.xmin })
  })

  it('inserts a page taken for new with one unchecked INSERT, and writes one that is not exactly', async () => {
    const count = (filter: (q: string) => boolean) => statements.filter(filter).length
    const accountInserts = () => statements.filter((q) => q.startsWith('insert into "accounts"'))
    const unchecked = (q: string) =>
      !q.includes(' where not exists ') && !q.includes(' on conflict ')
    const expectNew = (p: PageWrite): PageWrite => ({ ...p, expectNew: true })

    statements.length = 0
    const first = [account('a-1'), account('a-2'), account('a-3')]
    expect(await write(expectNew(page('1', { account: batch(first) })))).toEqual({
      created: 3,
      updated: 0,
      deleted: 0,
      errors: 0,
    })
    expect(accountInserts().map(unchecked)).toEqual([true])
    expect(count((q) => q.startsWith('rollback to savepoint'))).toBe(0)
    const before = new Map((await accountRows()).map((r) => [r.externalId, r]))

    // Not new after all: a-1 unchanged, a-2 renamed, a-4 new. The unchecked insert meets a-1,
    // goes back to its savepoint, and the page is written as any other.
    statements.length = 0
    const counts = await write(
      expectNew(
        page('2', {
          account: batch([account('a-1'), account('a-2', { name: 'Renamed' }), account('a-4')]),
        }),
      ),
    )
    expect(counts).toEqual({ created: 1, updated: 1, deleted: 0, errors: 0 })
    expect(accountInserts().map(unchecked)).toEqual([true, false, false])
    expect(count((q) => q.startsWith('rollback to savepoint'))).toBe(1)
    const after = new Map((await accountRows()).map((r) => [r.externalId, r]))
    expect(after.get('a-1')!.xmin).toBe(before.get('a-1')!.xmin)
    expect(after.get('a-2')!.name).toBe('Renamed')
    expect([...after.keys()]).toEqual(['a-1', 'a-2', 'a-3', 'a-4'])
  })

  it('counts a record another writer inserted meanwhile once, as an update, and loses neither write', async () => {
    // Another writer (a webhook event) inserts b-1 and holds its transaction open: the page's
    // check for new rows cannot see it, so the page's insert waits on it, then meets it.
    const other = await agent.handle.pool.connect()
    try {
      const otherPid = (await other.query<{ pid: number }>('select pg_backend_pid() as pid'))
        .rows[0]!.pid
      await other.query('begin')
      await other.query(`select set_config('app.tenant_id', $1, true)`, [tenantId])
      await other.query(
        `insert into accounts (tenant_id, source, external_id, name) values ($1, 'test-pages', 'b-1', 'From the event')`,
        [tenantId],
      )
      statements.length = 0
      const writing = write(page('1', { account: batch([account('a-1'), account('b-1')]) }))
      // The page is waiting on the other writer's row lock, not done.
      await expect.poll(() => waitsOn(otherPid), { timeout: 10_000 }).toBe(true)
      await other.query('commit')
      expect(await writing).toEqual({ created: 1, updated: 1, deleted: 0, errors: 0 })
    } finally {
      // Had the test failed before the commit, the page would wait on the other writer for good.
      await other.query('rollback')
      other.release()
    }
    // The page's insert met the other row and went back to its savepoint, then the page was
    // upserted as a set (not record by record).
    expect(statements.filter((q) => q.startsWith('rollback to savepoint'))).toHaveLength(1)
    const inserts = statements.filter((q) => q.startsWith('insert into "accounts"'))
    expect(inserts.map((q) => [q.includes(' from pg_temp.'), q.includes(' on conflict ')])).toEqual(
      [
        [true, false],
        [true, true],
      ],
    )
    const rows = await accountRows()
    expect(rows.map((r) => [r.externalId, r.name, r.stream])).toEqual([
      ['a-1', 'Account a-1', 'records'],
      ['b-1', 'Account b-1', 'records'],
    ])
  })

  /** Whether some session waits for a lock `pid` holds (the page, on the other writer). */
  const waitsOn = async (pid: number) => {
    // The agent's role sees no other session's state; the owner does.
    const owner = ownerDb()
    try {
      const res = await owner.pool.query<{ waiting: boolean }>(
        `select exists (select 1 from pg_stat_activity where $1 = any(pg_blocking_pids(pid))) as waiting`,
        [pid],
      )
      return res.rows[0]!.waiting
    } finally {
      await owner.close()
    }
  }

  it('moves only its own rows when one transaction writes several pages', async () => {
    const counts = await withTenant(agent.handle.db, tenantId, async (tx) => [
      await persistPage(tx, page('1', { account: batch([account('a-1'), account('a-2')]) })),
      await persistPage(
        tx,
        page('2', {
          account: batch([account('a-1', { name: 'Renamed' }), account('b-1')], ['a-2']),
        }),
      ),
      await persistPage(tx, page('3', { account: batch([account('c-1')]) })),
    ])
    expect(counts).toEqual([
      { created: 2, updated: 0, deleted: 0, errors: 0 },
      { created: 1, updated: 1, deleted: 1, errors: 0 },
      { created: 1, updated: 0, deleted: 0, errors: 0 },
    ])
    const rows = await accountRows()
    expect(rows.map((r) => [r.externalId, r.name, r.deletedAt === null])).toEqual([
      ['a-1', 'Renamed', true],
      ['a-2', 'Account a-2', false],
      ['b-1', 'Account b-1', true],
      ['c-1', 'Account c-1', true],
    ])
  })
})
