import { and, asc, desc, eq } from 'drizzle-orm'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  accounts,
  activities,
  auditLog,
  connectors,
  people,
  quarantine,
  streamState,
  syncRuns,
} from '../../db/schema/index.js'
import { postgresError } from '../../db/errors.js'
import { withTenant } from '../../db/tenant.js'
import { VendorError } from '../../shared/errors.js'
import {
  failRun,
  finishRun,
  runPages,
  runSync,
  startRun,
} from '../../src-agent/pipeline/run-sync.js'
import { classifyFailure } from '../../src-agent/pipeline/sync-failure.js'
import { startPagerFake, type PagerFake } from '../fakes/pager.js'
import { connectionRows } from '../helpers/connections.js'
import { agentFixture, connectedTenant, type AgentFixture } from '../helpers/agent.js'
import { ownerDb } from '../helpers/db.js'

describe('sync end to end through the pipeline', () => {
  let agent: AgentFixture
  let fake: PagerFake
  let statements: string[]

  beforeEach(async () => {
    statements = []
    agent = agentFixture({ onQuery: (q) => statements.push(q) })
    fake = await startPagerFake({ accounts: 30, people: 50, activities: 40 })
  })
  afterEach(async () => {
    await fake.close()
    await agent.close()
  })

  it('lands every record with exact canonical values, page by page', async () => {
    const tenantId = await connectedTenant(agent, fake, { pageSize: 25 })
    const summary = await runSync(agent, { tenantId, connectorType: 'test-pages' })
    expect(summary).toMatchObject({
      status: 'succeeded',
      pages: 5,
      created: 120,
      updated: 0,
      errors: 0,
    })

    const { acc, ppl, act, runs, conn } = await withTenant(
      agent.handle.db,
      tenantId,
      async (tx) => ({
        acc: await tx.select().from(accounts).orderBy(asc(accounts.externalId)),
        ppl: await tx.select().from(people),
        act: await tx.select().from(activities),
        runs: await tx.select().from(syncRuns),
        conn: await connectionRows(tx),
      }),
    )
    expect(acc).toHaveLength(30)
    expect(ppl).toHaveLength(50)
    expect(act).toHaveLength(40)
    const acc1 = acc.find((a) => a.externalId === 'acc-1')!
    expect(acc1).toMatchObject({
      source: 'test-pages',
      name: 'Account 1 Inc',
      domain: 'account1.example.com',
      industry: 'Manufacturing',
      employeeCount: 10,
      annualRevenue: 1000.5,
      deletedAt: null,
    })
    expect(acc1.sourceData).toMatchObject({
      id: 'acc-1',
      website: 'https://www.Account1.example.com/about',
    })
    const p7 = ppl.find((p) => p.externalId === 'p-7')!
    expect(p7).toMatchObject({
      email: 'person7@example.com',
      firstName: 'First7',
      lastName: 'Last7',
      accountExternalId: 'acc-7',
    })
    const a2 = act.find((a) => a.externalId === 'act-2')!
    expect(a2).toMatchObject({
      type: 'email_open',
      channel: 'email',
      personExternalId: 'p-2',
      properties: { subject: 'Subject 2', score: 2 },
    })
    expect(a2.occurredAt.toISOString()).toBe('2026-02-01T00:02:00.000Z')

    expect(runs).toHaveLength(1)
    expect(runs[0]).toMatchObject({
      status: 'succeeded',
      mode: 'incremental',
      pages: 5,
      created: 120,
    })
    expect(conn[0]).toMatchObject({ status: 'connected', cursor: '120', lastSyncError: null })
    expect(conn[0]!.lastSyncAt).toBeInstanceOf(Date)
  })

  it('writes each page with one set-based upsert per table, not a statement per row', async () => {
    const tenantId = await connectedTenant(agent, fake, { pageSize: 200 })
    statements.length = 0
    await runSync(agent, { tenantId, connectorType: 'test-pages' })
    const inserts = (table: string) =>
      statements.filter((s) => s.startsWith(`insert into "${table}"`))
    // One page of 120 records holds all three tables; all its rows are new, so each table takes
    // one INSERT … SELECT from its staging table, and no statement per row.
    for (const table of ['people', 'accounts', 'activities']) {
      expect(inserts(table).map((s) => s.includes(' from pg_temp.'))).toEqual([true])
    }
  })

  it('syncs a stream with nothing new in two transactions: its run opened, its page with its end', async () => {
    const tenantId = await connectedTenant(agent, fake, { pageSize: 200 })
    await runSync(agent, { tenantId, connectorType: 'test-pages' })
    statements.length = 0
    const summary = await runSync(agent, { tenantId, connectorType: 'test-pages' })
    expect(summary).toMatchObject({ status: 'succeeded', pages: 1, created: 0, updated: 0 })
    // The run opened and what its pages are read with (its mappings, its cursor) in one; the
    // empty page's cursor committed in the next, which also ends the run: the page is its last.
    expect(statements.filter((q) => q === 'begin')).toHaveLength(2)
    // The run, the connection marked syncing and the audit of the trigger in one statement, the
    // opening transaction's last: the connection's row stays locked as briefly as it can.
    const opened = statements.slice(statements.indexOf('begin'), statements.lastIndexOf('begin'))
    expect(opened.at(-2)).toMatch(
      /^with "run" as \(insert into "sync_runs" .*\), "syncing" as \(update "connectors" .*\) insert into "audit_log"/,
    )
    expect(opened.at(-1)).toBe('commit')
    // The page's transaction: its tenant, then one statement for the cursor, the run's counters
    // and end, and the connection's row lock; then the connection's status, read under that lock.
    const page = statements.slice(statements.lastIndexOf('begin'))
    expect(page).toHaveLength(5)
    expect(page[2]).toMatch(
      /^with "cursor" as \(insert into "stream_state" .*\), "connection_lock" as \(select .* from "connectors" .* for no key update\) update "sync_runs" set "status" = .*"pages" = "sync_runs"."pages" \+ 1.* where .*exists \(select 1 from "connection_lock"\)\) returning/,
    )
    expect(page[3]).toMatch(/^update "connectors" set "status"/)
    expect(page.at(-1)).toBe('commit')
    // Both are the sync's own work, which the source can give again: neither waits for the
    // disk at commit (withSyncWork).
    const firstAfterBegin = statements.flatMap((q, i) => (q === 'begin' ? [statements[i + 1]] : []))
    expect(firstAfterBegin).toEqual(
      Array(2).fill(expect.stringContaining(`set_config('synchronous_commit', 'off', true)`)),
    )
    const [connection] = await withTenant(agent.handle.db, tenantId, (tx) =>
      tx.select().from(connectors),
    )
    expect(connection).toMatchObject({ status: 'connected', lastSyncError: null })
    const [run] = await withTenant(agent.handle.db, tenantId, (tx) =>
      tx.select().from(syncRuns).orderBy(desc(syncRuns.startedAt)).limit(1),
    )
    expect(run).toMatchObject({ status: 'succeeded', pages: 1 })
    expect(run!.finishedAt).not.toBeNull()
    // The page is the run's last: no page after it waits for its turn, so it takes none.
    expect(statements.filter((q) => q.includes('pg_advisory_xact_lock'))).toEqual([])
  })

  describe('while a page is being written', () => {
    /**
     * One of this test's agent sessions: its state, its last statement, what it waits for (an
     * 'advisory' lock: a page's turn), whether it waits on the hold.
     */
    interface Session {
      pid: number
      state: string
      query: string
      waitEvent: string | null
      waitsOnHold: boolean
    }
    /** A row (the run's, unless said otherwise), held from another session. */
    interface Hold {
      /** The holding session's backend. */
      pid: number
      /** This test's agent sessions. */
      sessions(): Promise<Session[]>
      /** A statement in the holding transaction. */
      query(text: string, params?: unknown[]): Promise<unknown>
      /**
       * Lets go of the row, after killing the session waiting on it with 'kill'; undoes what the
       * holding transaction wrote with 'rollback'; once.
       */
      release(how: 'commit' | 'rollback' | 'kill'): Promise<void>
    }
    let holds: Hold[] = []
    let runs: Array<Promise<unknown>> = []
    afterEach(async () => {
      // A test that failed midway still lets its run go and waits for it, so nothing it
      // started outlives it (a hold already released is left as it is).
      for (const hold of holds) await hold.release('commit')
      await Promise.allSettled(runs)
      holds = []
      runs = []
    })
    /** Pages of the run, written while the test holds the run's row. */
    const pagesOf = (
      tenantId: string,
      runId: string,
      onPage?: (p: { cursor: string | null }) => void,
    ) => {
      const running = runPages(agent, {
        tenantId,
        connectorType: 'test-pages',
        runId,
        ...(onPage ? { onPage } : {}),
      })
      runs.push(running)
      return running
    }
    /**
     * Holds the run's sync_runs row from another session: a page's write waits on it (the run's
     * counters are the last thing it updates) until `release`. Only this test's agent sessions
     * are looked at: other test files share the database.
     */
    const holdRun = (runId: string): Promise<Hold> =>
      holdRow('select 1 from sync_runs where id = $1 for update', [runId])
    /** Holds the rows a `select … for update` locks, as holdRun does the run's. */
    const holdRow = async (lock: string, params: unknown[]): Promise<Hold> => {
      const owner = ownerDb()
      const client = await owner.pool.connect()
      await client.query('begin')
      await client.query(lock, params)
      const pid = (await client.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!
        .pid
      const sessions = async () => {
        // Within a transaction, the activity view is read once and kept: read it afresh.
        await client.query('select pg_stat_clear_snapshot()')
        return (
          await client.query<Session>(
            `select pid, state, query, wait_event as "waitEvent", ` +
              `pg_backend_pid() = any(pg_blocking_pids(pid)) as "waitsOnHold" ` +
              `from pg_stat_activity where application_name = $1`,
            [agent.applicationName],
          )
        ).rows
      }
      let released = false
      const hold: Hold = {
        pid,
        sessions,
        query: (text, values) => client.query(text, values),
        release: async (how: 'commit' | 'rollback' | 'kill') => {
          if (released) return
          released = true
          try {
            if (how === 'kill') {
              const page = (await sessions()).find((s) => s.waitsOnHold)
              await client.query('select pg_terminate_backend($1)', [page!.pid])
            }
            await client.query(how === 'rollback' ? 'rollback' : 'commit')
          } finally {
            client.release()
            await owner.close()
          }
        },
      }
      holds.push(hold)
      return hold
    }
    /**
     * Waits until one page waits on the hold, and the next one, on a session of its own, has
     * written what it writes before its turn and waits for it: for the first page's transaction
     * to end (an advisory lock).
     */
    const writtenAhead = async (hold: Hold) => {
      await expect
        .poll(
          async () => {
            const sessions = await hold.sessions()
            return [
              sessions.some((s) => s.waitsOnHold),
              sessions.filter((s) => s.waitEvent === 'advisory').length,
            ]
          },
          { timeout: 10_000 },
        )
        .toEqual([true, 1])
    }
    /** A fresh tenant's run (5 pages of 25 records), its row held. */
    const heldRun = async () => {
      const tenantId = await connectedTenant(agent, fake, { pageSize: 25 })
      const { runId } = await startRun(agent, { tenantId, connectorType: 'test-pages' })
      return { tenantId, runId, hold: await holdRun(runId) }
    }
    /** The holder writes p-1, a person of the run's second page. */
    const writeFirstPerson = (hold: Hold, tenantId: string) =>
      hold.query(
        `insert into people (tenant_id, source, external_id) values ($1, 'test-pages', 'p-1')`,
        [tenantId],
      )
    const storedRows = async (tenantId: string) =>
      withTenant(agent.handle.db, tenantId, async (tx) => ({
        rows:
          (await tx.select().from(people)).length +
          (await tx.select().from(accounts)).length +
          (await tx.select().from(activities)).length,
        cursors: (await tx.select().from(streamState)).map((r) => r.cursor),
      }))

    it('writes the next page meanwhile and commits the pages in order', async () => {
      const { tenantId, runId, hold } = await heldRun()
      const committed: Array<string | null> = []
      const running = pagesOf(tenantId, runId, (p) => committed.push(p.cursor))
      await writtenAhead(hold)
      // Both pages' rows were staged (page 1: accounts; page 2: accounts and people) and moved
      // into their tables, while the first page waits to commit.
      const count = (match: (q: string) => boolean) => statements.filter(match).length
      expect(count((q) => q.startsWith('copy pg_temp.'))).toBe(3)
      expect(count((q) => q.startsWith('insert into') && q.includes(' from pg_temp.'))).toBe(3)
      // Nothing is in yet: the first page waits, and the second waits for the first.
      expect(await storedRows(tenantId)).toEqual({ rows: 0, cursors: [] })
      await hold.release('commit')
      expect(await running).toMatchObject({ done: true, counts: { pages: 5, created: 120 } })
      expect(committed).toEqual(['25', '50', '75', '100', '120'])
      expect(await storedRows(tenantId)).toEqual({ rows: 120, cursors: ['120'] })
    })

    it('rolls the staged page back when the page before it fails, and the run resumes from the last commit', async () => {
      const { tenantId, runId, hold } = await heldRun()
      const running = pagesOf(tenantId, runId)
      running.catch(() => undefined)
      await writtenAhead(hold)
      // The first page's session dies: its page rolls back, and the second page with it.
      await hold.release('kill')
      await expect(running).rejects.toThrow()
      expect(await storedRows(tenantId)).toEqual({ rows: 0, cursors: [] })
      // No transaction is left behind, and the run reads everything again, once.
      const again = await runPages(agent, { tenantId, connectorType: 'test-pages', runId })
      expect(again).toMatchObject({ done: true, counts: { pages: 5, created: 120 } })
      expect(await storedRows(tenantId)).toEqual({ rows: 120, cursors: ['120'] })
    })

    it('lets Postgres break a deadlock with another writer instead of hanging', async () => {
      const { tenantId, runId, hold } = await heldRun()
      const running = pagesOf(tenantId, runId)
      // The first page waits on the holder; the second has written its rows (p-1 among them).
      const moved = () =>
        statements.filter((q) => q.startsWith('insert into') && q.includes(' from pg_temp.'))
      await expect
        .poll(async () => [(await hold.sessions()).some((s) => s.waitsOnHold), moved().length], {
          timeout: 10_000,
        })
        .toEqual([true, 3])
      // The holder now writes p-1 too: it waits on the second page, which waits for the first,
      // which waits on the holder. Postgres sees the cycle only if the second page's wait is
      // one it can see; the holder looks first (its deadlock_timeout is the shortest) and is
      // failed, so the pages go on.
      await hold.query(`set local deadlock_timeout = '10ms'`)
      const write = writeFirstPerson(hold, tenantId)
      const stillWaiting = new Promise((resolve) => setTimeout(resolve, 5_000, 'still waiting'))
      await expect(Promise.race([write, stillWaiting])).rejects.toMatchObject({ code: '40P01' })
      await hold.release('commit')
      expect(await running).toMatchObject({ done: true, counts: { pages: 5, created: 120 } })
      expect(await storedRows(tenantId)).toEqual({ rows: 120, cursors: ['120'] })
    })

    it('fails the page, retryably, when Postgres picks it to break such a deadlock', async () => {
      const { tenantId, runId, hold } = await heldRun()
      // The first page first waits on another session, one that wrote acc-1 (of its accounts).
      const first = await holdRow(
        `insert into accounts (tenant_id, source, external_id, name) ` +
          `values ($1, 'test-pages', 'acc-1', 'Held')`,
        [tenantId],
      )
      const running = pagesOf(tenantId, runId)
      running.catch(() => undefined)
      await writtenAhead(first)
      // The holder of the run's row writes p-1: it waits on the second page. It waits longest
      // before it looks for a circle.
      await hold.query(`set local deadlock_timeout = '60s'`)
      const write = writeFirstPerson(hold, tenantId)
      await expect
        .poll(
          async () => {
            const waits = (await first.query('select pg_blocking_pids($1) as p', [hold.pid])) as {
              rows: Array<{ p: number[] }>
            }
            return waits.rows[0]!.p.length
          },
          { timeout: 10_000 },
        )
        .toBe(1)
      // The first page goes on and waits on the run's row: the circle closes with a wait that
      // has just begun. Postgres looks for a circle once per wait, deadlock_timeout after it
      // began, so a page is picked (the first, or the second if its own look comes earlier),
      // and the holder's write goes through.
      await first.release('rollback')
      await write
      await hold.release('commit')
      const failure = await running.then(
        () => undefined,
        (err: unknown) => err,
      )
      expect(postgresError(failure).code).toBe('40P01')
      expect(classifyFailure(failure, 'Test')).toMatchObject({
        code: 'db_query_failed',
        retryable: true,
        connectorStatus: 'connected',
      })
      // Only whole pages are in: none, or the first (25 accounts), besides the holder's p-1.
      const committed = await storedRows(tenantId)
      expect([
        { rows: 1, cursors: [] },
        { rows: 26, cursors: ['25'] },
      ]).toContainEqual(committed)
      // The next try reads on from the last committed page, and every record lands once.
      const again = await runPages(agent, { tenantId, connectorType: 'test-pages', runId })
      expect(again).toMatchObject({
        done: true,
        counts: { pages: 5 - committed.cursors.length, updated: 1 },
      })
      expect(await storedRows(tenantId)).toEqual({ rows: 120, cursors: ['120'] })
    })

    /**
     * The next sync of a tenant synced once, its first page held up on a person's row (one it
     * writes) until the second page waits for its turn. `between` changes the feed once the
     * first page is read, before the second is.
     */
    const syncWithFirstPageHeld = async (
      tenantId: string,
      heldPerson: string,
      between: () => void,
    ) => {
      const firstPageEnd = Math.max(...fake.records().map((r) => r.seq)) - 1
      fake.onRequest((after) => {
        if (after === firstPageEnd) between()
      })
      const { runId } = await startRun(agent, { tenantId, connectorType: 'test-pages' })
      const hold = await holdRow(
        `select 1 from people where tenant_id = $1 and external_id = $2 for update`,
        [tenantId, heldPerson],
      )
      const running = pagesOf(tenantId, runId)
      await writtenAhead(hold)
      await hold.release('commit')
      return running
    }

    it('upserts a record two pages in flight share only after the first has committed', async () => {
      const tenantId = await connectedTenant(agent, fake, { pageSize: 25 })
      await runSync(agent, { tenantId, connectorType: 'test-pages' })
      // The next sync's first page updates p-7, then p-8; its second updates p-8 again, changed
      // between the two pages' reads.
      for (const i of [7, 8, ...Array.from({ length: 24 }, (_, k) => k + 10)]) {
        fake.update('person', `p-${i}`, { title: `Title ${i}` })
      }
      // The first page's upsert waits on p-7's row, before it reaches p-8.
      const running = syncWithFirstPageHeld(tenantId, 'p-7', () =>
        fake.update('person', 'p-8', { title: 'Second' }),
      )
      expect(await running).toMatchObject({
        done: true,
        counts: { pages: 2, created: 0, updated: 27, deleted: 0 },
      })
      const p8 = await withTenant(agent.handle.db, tenantId, (tx) =>
        tx.select().from(people).where(eq(people.externalId, 'p-8')),
      )
      expect(p8).toMatchObject([{ title: 'Second' }])
    })

    it('leaves a record the page before deletes alone until that page has committed', async () => {
      const tenantId = await connectedTenant(agent, fake, { pageSize: 25 })
      await runSync(agent, { tenantId, connectorType: 'test-pages' })
      // The next sync's first page deletes p-5 and act-3; its second brings act-3 back, changed
      // between the two pages' reads.
      fake.remove('person', 'p-5')
      fake.remove('activity', 'act-3')
      for (let i = 10; i <= 33; i++) fake.update('person', `p-${i}`, { title: `Title ${i}` })
      // The first page's deletions wait on p-5's row (persons first, then activities).
      const running = syncWithFirstPageHeld(tenantId, 'p-5', () =>
        fake.update('activity', 'act-3', { deleted: false, details: { subject: 'Back' } }),
      )
      expect(await running).toMatchObject({
        done: true,
        counts: { pages: 2, created: 0, updated: 25, deleted: 2 },
      })
      const act3 = await withTenant(agent.handle.db, tenantId, (tx) =>
        tx.select().from(activities).where(eq(activities.externalId, 'act-3')),
      )
      expect(act3).toMatchObject([{ deletedAt: null, properties: { subject: 'Back' } }])
    })
  })

  it("leaves a run of the same sync running and the connection syncing until the sync's last run ends", async () => {
    const tenantId = await connectedTenant(agent, fake)
    const target = { tenantId, connectorType: 'test-pages' }
    const state = () =>
      withTenant(agent.handle.db, tenantId, async (tx) => ({
        status: (await connectionRows(tx))[0]!.status,
        runs: (await tx.select().from(syncRuns).orderBy(asc(syncRuns.startedAt))).map(
          (r) => r.status,
        ),
      }))
    // A stream still writing its last pages when the next one opens its run.
    const first = await startRun(agent, target)
    const second = await startRun(agent, { ...target, live: [first.runId] })
    expect(await state()).toEqual({ status: 'syncing', runs: ['running', 'running'] })
    await finishRun(agent, { ...target, runId: first.runId })
    expect(await state()).toEqual({ status: 'syncing', runs: ['succeeded', 'running'] })
    await finishRun(agent, { ...target, runId: second.runId })
    expect(await state()).toEqual({ status: 'connected', runs: ['succeeded', 'succeeded'] })
    // A run left running by a process that died is not this sync's: the next run ends it.
    const orphan = await startRun(agent, target)
    await startRun(agent, target)
    const [run] = await withTenant(agent.handle.db, tenantId, (tx) =>
      tx.select().from(syncRuns).where(eq(syncRuns.id, orphan.runId)),
    )
    expect(run).toMatchObject({ status: 'failed', errorCode: 'sync_incomplete' })
  })

  it('leaves the connection syncing when a run of the sync fails for a passing reason while the next one runs', async () => {
    const tenantId = await connectedTenant(agent, fake)
    const target = { tenantId, connectorType: 'test-pages' }
    const status = () =>
      withTenant(agent.handle.db, tenantId, async (tx) => (await connectionRows(tx))[0]!.status)
    const first = await startRun(agent, target)
    const second = await startRun(agent, { ...target, live: [first.runId] })
    const passing = new VendorError('vendor_unavailable', 'The source is busy.', {
      retryable: true,
    })
    expect(await failRun(agent, { ...target, runId: first.runId }, passing)).toMatchObject({
      connectorStatus: 'connected',
    })
    expect(await status()).toBe('syncing')
    await failRun(agent, { ...target, runId: second.runId }, passing)
    expect(await status()).toBe('connected')
  })

  it('applies inserts, updates and deletes incrementally from the stored cursor', async () => {
    const tenantId = await connectedTenant(agent, fake)
    await runSync(agent, { tenantId, connectorType: 'test-pages' })
    fake.requests.length = 0

    fake.update('person', 'p-1', { email: 'new.address@example.com' })
    fake.remove('account', 'acc-2')
    fake.insert('person', { id: 'p-new', email: 'fresh@example.com', first_name: 'Fresh' })
    const second = await runSync(agent, { tenantId, connectorType: 'test-pages' })
    expect(second).toMatchObject({
      status: 'succeeded',
      created: 1,
      updated: 1,
      deleted: 1,
      pages: 1,
    })
    expect(fake.requests[0]).toBe(120)

    const rows = await withTenant(agent.handle.db, tenantId, async (tx) => ({
      p1: (await tx.select().from(people).where(eq(people.externalId, 'p-1')))[0],
      acc2: (await tx.select().from(accounts).where(eq(accounts.externalId, 'acc-2')))[0],
      count: (await tx.select().from(people)).length,
    }))
    expect(rows.p1?.email).toBe('new.address@example.com')
    expect(rows.acc2?.deletedAt).toBeInstanceOf(Date)
    expect(rows.count).toBe(51)

    const third = await runSync(agent, { tenantId, connectorType: 'test-pages' })
    expect(third).toMatchObject({ status: 'succeeded', created: 0, updated: 0, deleted: 0 })
  })

  it('re-reads everything on --full without duplicating or counting unchanged rows', async () => {
    const tenantId = await connectedTenant(agent, fake, { pageSize: 25 })
    // The first sync's rows are all new: every page goes in by unchecked INSERTs.
    const unchecked = () =>
      statements.filter(
        (q) =>
          /^insert into "(people|accounts|activities)"/.test(q) &&
          !q.includes(' where not exists ') &&
          !q.includes(' on conflict '),
      )
    statements.length = 0
    const first = await runSync(agent, { tenantId, connectorType: 'test-pages' })
    expect(first).toMatchObject({ pages: 5, created: 120 })
    expect(unchecked().length).toBeGreaterThanOrEqual(5)
    expect(statements.filter((q) => q.startsWith('rollback to savepoint'))).toEqual([])
    fake.update('account', 'acc-3', { industry: 'Retail' })
    fake.requests.length = 0
    statements.length = 0
    const full = await runSync(agent, { tenantId, connectorType: 'test-pages', full: true })
    expect(full).toMatchObject({ status: 'succeeded', mode: 'full', created: 0, updated: 1 })
    // Its first page's unchecked INSERT (one per table) meets the rows already there; the pages
    // after it are not taken for new.
    expect(unchecked().length).toBeLessThanOrEqual(3)
    expect(statements.filter((q) => q.startsWith('rollback to savepoint'))).toHaveLength(
      unchecked().length,
    )
    expect(fake.requests[0]).toBe(0)
    const count = await withTenant(
      agent.handle.db,
      tenantId,
      async (tx) => (await tx.select().from(accounts)).length,
    )
    expect(count).toBe(30)
  })

  it('quarantines bad records with a reason naming the field and carries on', async () => {
    fake.insert('account', { id: 'acc-noname', website: 'x.com' })
    fake.insert('person', { id: 'p-bad', email: 'not-an-email' })
    fake.insert('account', { id: 'acc-badcount', name: 'Bad Count', employees: 'lots' })
    const tenantId = await connectedTenant(agent, fake)
    const summary = await runSync(agent, { tenantId, connectorType: 'test-pages' })
    expect(summary).toMatchObject({ status: 'succeeded', created: 120, errors: 3 })

    const q = await withTenant(agent.handle.db, tenantId, (tx) =>
      tx.select().from(quarantine).orderBy(asc(quarantine.externalId)),
    )
    expect(q.map((r) => [r.externalId, r.entityType, r.connector])).toEqual([
      ['acc-badcount', 'account', 'test-pages'],
      ['acc-noname', 'account', 'test-pages'],
      ['p-bad', 'person', 'test-pages'],
    ])
    expect(q[0]!.reason).toMatch(/employeeCount/)
    expect(q[1]!.reason).toMatch(/name/)
    expect(q[2]!.reason).toMatch(/email/)
    expect(q[1]!.rawPayload).toMatchObject({ id: 'acc-noname', website: 'x.com' })
    const run = await withTenant(agent.handle.db, tenantId, (tx) => tx.select().from(syncRuns))
    expect(run[0]?.errors).toBe(3)
  })

  it('records a transient failure as retryable and succeeds on the next run', async () => {
    await fake.close()
    fake = await startPagerFake({ accounts: 5, failFirst: { count: 1, status: 503 } })
    const tenantId = await connectedTenant(agent, fake)
    const failed = await runSync(agent, { tenantId, connectorType: 'test-pages' })
    expect(failed).toMatchObject({
      status: 'failed',
      retryable: true,
      errorCode: 'vendor_unavailable',
    })
    const conn = await withTenant(agent.handle.db, tenantId, (tx) => connectionRows(tx))
    expect(conn[0]).toMatchObject({ status: 'connected' })
    expect(conn[0]!.lastSyncError).toMatch(/503/)

    const ok = await runSync(agent, { tenantId, connectorType: 'test-pages' })
    expect(ok).toMatchObject({ status: 'succeeded', created: 5 })
  })

  it('commits a page before reporting that fetching the next one failed', async () => {
    await fake.close()
    fake = await startPagerFake({ accounts: 30, people: 50, activities: 40, failRequests: [1] })
    const tenantId = await connectedTenant(agent, fake, { pageSize: 25 })
    const failed = await runSync(agent, { tenantId, connectorType: 'test-pages' })
    expect(failed).toMatchObject({ status: 'failed', retryable: true, pages: 1, created: 25 })
    const conn = await withTenant(agent.handle.db, tenantId, (tx) => connectionRows(tx))
    expect(conn[0]?.cursor).toBe('25')
    const firstRequestOfResume = fake.requests.length
    const resumed = await runSync(agent, { tenantId, connectorType: 'test-pages' })
    expect(resumed).toMatchObject({ status: 'succeeded', created: 95 })
    expect(fake.requests[firstRequestOfResume]).toBe(25)
  })

  it('stops after the page in hand when cancelled, keeps the connection usable, and resumes', async () => {
    const tenantId = await connectedTenant(agent, fake, { pageSize: 25 })
    const controller = new AbortController()
    const stopped = await runSync(agent, {
      tenantId,
      connectorType: 'test-pages',
      signal: controller.signal,
      onProgress: (p) => {
        if (p.pages === 2) controller.abort()
      },
    })
    expect(stopped).toMatchObject({
      status: 'failed',
      errorCode: 'sync_cancelled',
      retryable: true,
      created: 50,
    })
    expect(stopped.error).toMatch(/^The sync was cancelled\./)
    const conn = await withTenant(agent.handle.db, tenantId, (tx) => connectionRows(tx))
    expect(conn[0]).toMatchObject({ status: 'connected', cursor: '50' })
    const resumed = await runSync(agent, { tenantId, connectorType: 'test-pages' })
    expect(resumed).toMatchObject({ status: 'succeeded', created: 70 })
  })

  it('marks the connection "needs re-auth" when the source rejects the credentials', async () => {
    const tenantId = await connectedTenant(agent, fake)
    await fake.close()
    fake = await startPagerFake({ accounts: 5, apiKey: 'a-different-key' })
    // Point the stored connection at a server that no longer accepts its key.
    await withTenant(agent.handle.db, tenantId, (tx) =>
      tx.update(connectors).set({ config: {} }).where(eq(connectors.tenantId, tenantId)),
    )
    const { sealCredentials } = await import('../../src-agent/pipeline/connection.js')
    const sealed = sealCredentials(agent.keyring, tenantId, 'test-pages', {
      baseUrl: fake.url,
      apiKey: 'the-old-revoked-key',
    })
    await withTenant(agent.handle.db, tenantId, (tx) =>
      tx
        .update(connectors)
        .set({ encryptedCredentials: sealed })
        .where(eq(connectors.tenantId, tenantId)),
    )
    const result = await runSync(agent, { tenantId, connectorType: 'test-pages' })
    expect(result).toMatchObject({
      status: 'failed',
      retryable: false,
      errorCode: 'vendor_auth_failed',
    })
    const conn = await withTenant(agent.handle.db, tenantId, (tx) => connectionRows(tx))
    expect(conn[0]?.status).toBe('error')
    expect(conn[0]?.lastSyncError).toMatch(/^needs re-auth: /)
  })

  it('never runs two syncs of one connection at once', async () => {
    fake.setDelay(100)
    const tenantId = await connectedTenant(agent, fake)
    const results = await Promise.allSettled([
      runSync(agent, { tenantId, connectorType: 'test-pages' }),
      runSync(agent, { tenantId, connectorType: 'test-pages' }),
    ])
    const rejected = results.filter((r) => r.status === 'rejected')
    expect(rejected).toHaveLength(1)
    expect(String((rejected[0] as PromiseRejectedResult).reason)).toMatch(/already running/)
    const runs = await withTenant(agent.handle.db, tenantId, (tx) => tx.select().from(syncRuns))
    expect(runs).toHaveLength(1)
  })

  it('runs in chunks, each resuming from the committed cursor', async () => {
    const tenantId = await connectedTenant(agent, fake, { pageSize: 25 })
    const { runId, mode } = await startRun(agent, {
      tenantId,
      connectorType: 'test-pages',
      full: true,
    })
    expect(mode).toBe('full')
    const target = { tenantId, connectorType: 'test-pages', runId }
    const first = await runPages(agent, { ...target, maxPages: 2 })
    expect(first).toMatchObject({ done: false, cursor: '50', counts: { pages: 2, created: 50 } })
    const second = await runPages(agent, { ...target, maxPages: 2 })
    expect(second).toMatchObject({ done: false, counts: { pages: 2, created: 50 } })
    const third = await runPages(agent, { ...target, maxPages: 2 })
    expect(third).toMatchObject({ done: true, counts: { pages: 1, created: 20 } })
    expect(fake.requests).toEqual([0, 25, 50, 75, 100])
    const totals = await finishRun(agent, target)
    expect(totals).toEqual({ pages: 5, created: 120, updated: 0, deleted: 0, errors: 0 })
  })

  it('audits the sync trigger in the tenant’s audit log', async () => {
    const tenantId = await connectedTenant(agent, fake)
    const summary = await runSync(agent, { tenantId, connectorType: 'test-pages' })
    const rows = await withTenant(agent.handle.db, tenantId, (tx) =>
      tx
        .select()
        .from(auditLog)
        .where(and(eq(auditLog.action, 'sync.trigger'))),
    )
    expect(rows).toHaveLength(1)
    expect(rows[0]).toMatchObject({ userId: 'test:runner', resource: 'connector' })
    expect(rows[0]!.metadata).toMatchObject({
      connectorType: 'test-pages',
      stream: 'records',
      runId: summary.streams[0]!.runId,
    })
  })

  it('never logs a secret, even at trace level', async () => {
    const canaryKey = 'CANARY-api-key-7f3a9c1e5b'
    await fake.close()
    fake = await startPagerFake({ accounts: 10, people: 10, apiKey: canaryKey })
    const tenantId = await connectedTenant(agent, fake, { apiKey: canaryKey })
    const summary = await runSync(agent, { tenantId, connectorType: 'test-pages' })
    expect(summary.status).toBe('succeeded')
    const logged = agent.logLines()
    // The connector logs its request headers and credentials at debug: they must arrive redacted.
    expect(logged).toContain('fetching page')
    expect(logged).toContain('[REDACTED]')
    expect(logged).not.toContain(canaryKey)
    expect(logged).not.toContain('CANARY')
    const audit = await withTenant(agent.handle.db, tenantId, (tx) => tx.select().from(auditLog))
    expect(JSON.stringify(audit)).not.toContain(canaryKey)
  })
})
