import { asc, eq, sql } from 'drizzle-orm'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { accounts, activities, people, quarantine, syncRuns } from '../../db/schema/index.js'
import { connectionRows } from '../helpers/connections.js'
import { withTenant } from '../../db/tenant.js'
import { VendorError } from '../../shared/errors.js'
import type { EntityType, FieldMapping, SourceRecord } from '../../shared/schemas.js'
import '../../src-agent/connectors/salesforce/index.js'
import {
  encodePage,
  encodePrepared,
  persistPage,
  type PageWrite,
} from '../../src-agent/pipeline/persist.js'
import type { PreparedBatch, PreparedUpsert } from '../../src-agent/pipeline/prepare.js'
import { failRun, runSync, startRun } from '../../src-agent/pipeline/run-sync.js'
import { connect } from '../../src-agent/services/connections.js'
import { startPagerFake, type PagerFake } from '../fakes/pager.js'
import { startSalesforceFake, type SalesforceFake } from '../fakes/salesforce.js'
import { agentFixture, connectedTenant, type AgentFixture } from '../helpers/agent.js'
import { seedTenant } from '../helpers/db.js'

/**
 * "One odd record stops a sync for good": text Postgres cannot store (NUL, lone surrogates) and
 * values a column cannot hold must cost that record, never the page, the run or the connection.
 */
describe('odd records through the pipeline', () => {
  let agent: AgentFixture
  let fake: PagerFake

  beforeEach(async () => {
    agent = agentFixture()
    fake = await startPagerFake({ accounts: 3, people: 3, activities: 2 })
  })
  afterEach(async () => {
    await fake.close()
    await agent.close()
  })

  const tables = (tenantId: string) =>
    withTenant(agent.handle.db, tenantId, async (tx) => ({
      accounts: await tx.select().from(accounts).orderBy(asc(accounts.externalId)),
      people: await tx.select().from(people).orderBy(asc(people.externalId)),
      activities: await tx.select().from(activities).orderBy(asc(activities.externalId)),
      quarantine: await tx.select().from(quarantine).orderBy(asc(quarantine.externalId)),
      connector: (await connectionRows(tx))[0]!,
      runs: await tx.select().from(syncRuns),
    }))

  const lastSeq = () => String(Math.max(...fake.records().map((r) => r.seq)))
  const utf8 = (text: string | null | undefined) => Buffer.from(text ?? '', 'utf8').toString('hex')

  it('commits a page holding NUL and lone-surrogate records, cleaned, and clean records byte-exact', async () => {
    fake.insert('account', {
      id: 'acc-nul',
      name: 'Nul\u0000 Corp',
      industry: 'Soft\u0000ware',
      website: 'nul.example.com',
      notes: { lines: ['a\u0000b', 'ok', { deep: 'x\u0000' }] },
      'key\u0000': 'v',
    })
    fake.insert('person', {
      id: 'p-surrogates',
      email: 'p.s@example.com',
      first_name: 'Bad\ud800Surrogate',
      last_name: 'Low\udc00First',
      title: 'Reversed \udc00\ud800 pair',
    })
    const clean = fake.insert('person', {
      id: 'p-clean',
      email: 'clean@example.com',
      first_name: 'Zoë 😀',
      last_name: 'مرحبا بالعالم',
      title: '👩🏽‍💻 e\u0301 👨‍👩‍👧 \u{10FFFF}',
      phone: '\ufffd already',
    })
    fake.insert('activity', {
      id: 'act-nul',
      type: 'email_open',
      occurred_at: '2026-02-02T00:00:00Z',
      details: { subject: 'Sub\u0000ject 😀', score: 1 },
    })
    // Refused by the quality step, and dirty too: their quarantine rows must be storable.
    fake.insert('person', { id: 'p-reject', email: 'not\u0000an-email', first_name: 'Rej\ud800' })
    fake.insert('account', { id: 'acc-reject', name: 'Count\u0000 Co', employees: 'lots\u0000' })

    const tenantId = await connectedTenant(agent, fake, { pageSize: 100 })
    const summary = await runSync(agent, { tenantId, connectorType: 'test-pages' })
    expect(summary).toMatchObject({ status: 'succeeded', pages: 1, created: 12, errors: 2 })

    const t = await tables(tenantId)
    const acc = t.accounts.find((a) => a.externalId === 'acc-nul')!
    expect(acc).toMatchObject({ name: 'Nul Corp', industry: 'Software', domain: 'nul.example.com' })
    const { seq, updatedAt } = fake.records().find((r) => r.id === 'acc-nul')!
    expect(acc.sourceData).toEqual({
      kind: 'account',
      id: 'acc-nul',
      seq,
      updatedAt,
      name: 'Nul Corp',
      industry: 'Software',
      website: 'nul.example.com',
      notes: { lines: ['ab', 'ok', { deep: 'x' }] },
      key: 'v',
    })

    const sur = t.people.find((p) => p.externalId === 'p-surrogates')!
    expect(sur).toMatchObject({
      firstName: 'Bad\ufffdSurrogate',
      lastName: 'Low\ufffdFirst',
      title: 'Reversed \ufffd\ufffd pair',
    })
    expect(sur.sourceData).toMatchObject({ first_name: 'Bad\ufffdSurrogate' })

    const kept = t.people.find((p) => p.externalId === 'p-clean')!
    expect(utf8(kept.firstName)).toBe(utf8('Zoë 😀'))
    expect(utf8(kept.lastName)).toBe(utf8('مرحبا بالعالم'))
    expect(utf8(kept.title)).toBe(utf8(clean.title as string))
    expect(utf8(kept.phone)).toBe(utf8('\ufffd already'))
    expect(kept.sourceData).toEqual(JSON.parse(JSON.stringify(clean)))

    const act = t.activities.find((a) => a.externalId === 'act-nul')!
    expect(act.properties).toEqual({ subject: 'Subject 😀', score: 1 })

    expect(t.quarantine.map((q) => [q.externalId, q.entityType])).toEqual([
      ['acc-reject', 'account'],
      ['p-reject', 'person'],
    ])
    expect(t.quarantine[0]!.reason).toMatch(/employeeCount/)
    expect(t.quarantine[0]!.rawPayload).toMatchObject({ name: 'Count Co', employees: 'lots' })
    expect(t.quarantine[1]!.reason).toMatch(/email/)
    expect(t.quarantine[1]!.rawPayload).toMatchObject({
      email: 'notan-email',
      first_name: 'Rej\ufffd',
    })
    expect(t.connector).toMatchObject({
      status: 'connected',
      cursor: lastSeq(),
      lastSyncError: null,
    })

    // Cleaned rows compare equal to the cleaned source next time: nothing is rewritten.
    const again = await runSync(agent, { tenantId, connectorType: 'test-pages', full: true })
    expect(again).toMatchObject({ status: 'succeeded', created: 0, updated: 0 })
  })

  it('quarantines values a column cannot hold, naming the field, and commits the rest and the cursor', async () => {
    fake.insert('account', { id: 'acc-huge', name: 'Huge', employees: 1e20 })
    fake.insert('account', { id: 'acc-int4', name: 'Past int4', employees: '3000000000' })
    fake.insert('account', { id: 'acc-negative', name: 'Negative', employees: -5 })
    fake.insert('account', { id: 'acc-noname', name: '\u0000 ', employees: 5 })
    fake.insert('account', { id: 'acc-max', name: 'Max', employees: 2_147_483_647 })
    fake.insert('activity', { id: 'act-far', type: 'visit', occurred_at: 1e15 })
    fake.insert('person', { id: 'p-after', email: 'after@example.com' })

    const tenantId = await connectedTenant(agent, fake, { pageSize: 100 })
    const summary = await runSync(agent, { tenantId, connectorType: 'test-pages' })
    expect(summary).toMatchObject({ status: 'succeeded', pages: 1, created: 10, errors: 5 })

    const t = await tables(tenantId)
    expect(t.quarantine.map((q) => [q.externalId, q.reason.split(':')[0]])).toEqual([
      ['acc-huge', 'employeeCount'],
      ['acc-int4', 'employeeCount'],
      ['acc-negative', 'employeeCount'],
      ['acc-noname', 'name'],
      ['act-far', 'occurredAt'],
    ])
    expect(t.accounts.find((a) => a.externalId === 'acc-max')?.employeeCount).toBe(2_147_483_647)
    expect(t.people.map((p) => p.externalId)).toContain('p-after')
    expect(t.connector).toMatchObject({ status: 'connected', cursor: lastSeq() })
    expect(t.runs[0]).toMatchObject({ status: 'succeeded', errors: 5, created: 10 })
  })
})

describe('a page Postgres refuses part of', () => {
  let agent: AgentFixture
  let fake: PagerFake
  let statements: string[]

  beforeEach(async () => {
    statements = []
    agent = agentFixture({ onQuery: (q) => statements.push(q) })
    fake = await startPagerFake({ accounts: 1 })
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
  /** Page `cursor` of a run (startRun's) of the test-pages connector, as a sync writes it. */
  const pageOf = (
    tenantId: string,
    run: { runId: string; connectorId: string },
    cursor: string,
    batches: Partial<PageWrite['batches']>,
  ): PageWrite => ({
    tenantId,
    source: 'test-pages',
    runId: run.runId,
    stream: { tenantId, connectorId: run.connectorId, stream: 'records' },
    partition: '',
    cursor,
    finished: false,
    batches: { person: batch(), account: batch(), activity: batch(), ...batches },
  })
  const writePage = (tenantId: string, page: PageWrite) =>
    withTenant(agent.handle.db, tenantId, (tx) => persistPage(tx, page))

  it('writes the page record by record in savepoints when the set-based upsert fails, quarantining what Postgres refuses', async () => {
    const tenantId = await connectedTenant(agent, fake)
    const run = await startRun(agent, { tenantId, connectorType: 'test-pages' })
    const page = (cursor: string, batches: Partial<PageWrite['batches']>): PageWrite =>
      pageOf(tenantId, run, cursor, batches)
    const write = (p: PageWrite) => writePage(tenantId, p)

    const same = account('a-same', {
      domain: 'same.example',
      employeeCount: 12,
      annualRevenue: 1000.5,
    })
    const event = (externalId: string, occurredAt: Date): PreparedUpsert<'activity'> => ({
      record: { externalId, type: 'open', occurredAt, properties: { s: 'x', n: [1.5, null] } },
      raw: { id: externalId },
    })
    const at = new Date('2026-02-01T10:00:00.123Z')
    await write(
      page('1', {
        account: batch([same, account('a-changed')]),
        activity: batch([event('e-same', at)]),
      }),
    )

    // Records the quality step would refuse, handed to persist directly: the safety net.
    statements.length = 0
    const counts = await write(
      page('2', {
        account: batch(
          [
            same,
            account('a-changed', { name: 'Renamed' }),
            account('a-int4', { employeeCount: 3_000_000_000 }),
            account(
              'a-nul',
              { industry: 'Soft\u0000ware' },
              { Id: 'a-nul', Industry: 'Soft\u0000ware' },
            ),
            account('a-new', { employeeCount: 7 }),
          ],
          ['a-gone'],
        ),
        person: batch([{ record: { externalId: 'p-1', firstName: 'Ann' }, raw: {} }]),
        // Year 20000: toISOString writes "+020000-…", which Postgres cannot read.
        activity: batch([event('e-same', at), event('e-far', new Date(Date.UTC(20000, 0, 1)))]),
      }),
    )
    // Rows the fallback writes unchanged compare equal to what the set-based upsert wrote.
    expect(counts).toEqual({ created: 2, updated: 1, deleted: 0, errors: 3 })
    // The set-based write was tried first (the page's accounts COPYed into the staging table,
    // which refused them), then each account in a savepoint of its own.
    const accountCopies = statements.filter((s) =>
      s.startsWith('copy pg_temp."gtm_stage_accounts"'),
    )
    expect(accountCopies.length).toBe(1)
    const accountInserts = statements.filter((s) => s.startsWith('insert into "accounts"'))
    expect(accountInserts.length).toBe(5)
    expect(statements.indexOf(accountCopies[0]!)).toBeLessThan(
      statements.indexOf(accountInserts[0]!),
    )
    expect(statements.filter((s) => /^savepoint/.test(s)).length).toBeGreaterThanOrEqual(6)

    const t = await withTenant(agent.handle.db, tenantId, async (tx) => ({
      accounts: await tx.select().from(accounts).orderBy(asc(accounts.externalId)),
      people: await tx.select().from(people),
      quarantine: await tx.select().from(quarantine).orderBy(asc(quarantine.externalId)),
      connector: (await connectionRows(tx)).find((c) => c.id === run.connectorId)!,
      run: (await tx.select().from(syncRuns).where(eq(syncRuns.id, run.runId)))[0]!,
    }))
    expect(t.accounts.map((a) => [a.externalId, a.name])).toEqual([
      ['a-changed', 'Renamed'],
      ['a-new', 'Account a-new'],
      ['a-same', 'Account a-same'],
    ])
    expect(t.people).toHaveLength(1)
    expect(t.quarantine.map((q) => q.externalId)).toEqual(['a-int4', 'a-nul', 'e-far'])
    const [int4, nul, far] = t.quarantine
    expect(int4!.reason).toBe(
      'employeeCount: field "employeeCount" was refused: Postgres error 22003: ' +
        'value "…" is out of range for type integer',
    )
    expect(int4!.reason).not.toContain('3000000000')
    expect(nul!.reason).toMatch(/^industry: .*22021/)
    expect(nul!.rawPayload).toEqual({ Id: 'a-nul', Industry: 'Software' })
    expect(far!.reason).toMatch(/^occurredAt: field "occurredAt" was refused: Postgres error 22/)
    expect(far!.reason).not.toContain('20000')
    expect(t.connector.cursor).toBe('2')
    expect(t.run).toMatchObject({ pages: 2, created: 5, updated: 1, errors: 3 })
  })

  it('reads an encoded page back from its COPY lines when it falls back: every character as sent', async () => {
    const tenantId = await connectedTenant(agent, fake)
    const run = await startRun(agent, { tenantId, connectorType: 'test-pages' })
    // Text COPY escapes (tab, line breaks, backslash) and text it does not (quotes, "\\N" as
    // data, non-ASCII, JSON escapes in the payload), in values and in payloads.
    const odd = 'Tab\there, line\nbreak\r\nand \\ back\\slash, "quoted", \\N, ü, 名前, 🚀'
    const oddRaw = {
      Id: 'a-odd',
      Name: odd,
      Nested: { path: 'C:\\dir\\file', list: ['\t', '\\n', null, 1.5, true] },
    }
    const upserts = [
      account('a-first', { industry: '\\N' }, { Id: 'a-first', Note: '\\N' }),
      account('a-odd', { name: odd, domain: 'odd.example', industry: odd }, oddRaw),
      // Past int4: Postgres refuses the page's set-based write, so every record goes one by one.
      account('a-int4', { employeeCount: 3_000_000_000 }, oddRaw),
      account('a-last', { name: 'Last\\' }, { Id: 'a-last', Name: 'Last\\' }),
    ]
    // Encoded in chunks, as a sync encodes a page a slice at a time: here two records each.
    const batches = encodePrepared(
      { person: batch(), account: batch(upserts), activity: batch() },
      2,
    )
    expect(batches.account.rows).toHaveLength(2)
    const counts = await writePage(tenantId, pageOf(tenantId, run, '1', batches))
    expect(counts).toEqual({ created: 3, updated: 0, deleted: 0, errors: 1 })
    const t = await withTenant(agent.handle.db, tenantId, async (tx) => ({
      accounts: await tx.select().from(accounts).orderBy(asc(accounts.externalId)),
      quarantine: await tx.select().from(quarantine),
    }))
    expect(
      t.accounts.map((a) => [a.externalId, a.name, a.domain, a.industry, a.sourceData]),
    ).toEqual([
      ['a-first', 'Account a-first', null, '\\N', { Id: 'a-first', Note: '\\N' }],
      ['a-last', 'Last\\', null, null, { Id: 'a-last', Name: 'Last\\' }],
      ['a-odd', odd, 'odd.example', odd, oddRaw],
    ])
    // The refused record's payload, read back from its line, is stored as it came.
    expect(t.quarantine).toHaveLength(1)
    expect(t.quarantine[0]).toMatchObject({ externalId: 'a-int4', rawPayload: oddRaw })
    expect(t.quarantine[0]!.reason).toMatch(/^employeeCount: /)
  })

  it('dedupes a page it encodes a slice at a time: the newest of an id wins across slices, in page order', async () => {
    const tenantId = await connectedTenant(agent, fake)
    const run = await startRun(agent, { tenantId, connectorType: 'test-pages' })
    const mappings: FieldMapping[] = [
      { sourceField: 'Id', targetField: 'externalId', transform: 'none' },
      { sourceField: 'Name', targetField: 'name', transform: 'none' },
    ]
    const at = (minute: number) => `2026-03-01T10:${String(minute).padStart(2, '0')}:00.000Z`
    const record = (id: string, name: string, minute: number, deleted = false): SourceRecord => ({
      entityType: 'account',
      data: { Id: id, Name: name },
      modifiedAt: at(minute),
      ...(deleted ? { deleted: true } : {}),
    })
    // Read two at a time, as a sync reads a page's slices: each pair is encoded before the next.
    const encode = async (records: SourceRecord[]) => {
      let next = 0
      const read = (max: number) => records.slice(next, (next += max))
      return encodePage(
        read,
        () => mappings,
        async () => undefined,
        2,
      )
    }
    const write = (batches: PageWrite['batches'], cursor: string) =>
      writePage(tenantId, pageOf(tenantId, run, cursor, batches))

    // Without a repeated id, each slice's chunk is written as it was encoded.
    const plain = await encode([
      record('a-1', 'One', 1),
      record('a-2', 'Two', 1),
      record('a-3', 'Three', 1),
    ])
    expect(plain.account.ids).toEqual(['a-1', 'a-2', 'a-3'])
    expect(plain.account.rows).toHaveLength(2)
    expect(await write(plain, '1')).toEqual({ created: 3, updated: 0, deleted: 0, errors: 0 })

    const page = await encode([
      record('a-1', 'One, old', 2),
      record('a-2', 'Two, changed', 3),
      record('a-1', 'One, new', 4), // newer: wins over the first, in another slice
      record('a-4', 'Four, newer', 6),
      record('a-2', 'Two', 5, true), // a newer deletion wins over the change
      record('a-4', 'Four, older', 5), // later in the page but stamped older: loses
      record('a-5', 'Five', 1),
    ])
    expect(page.account.ids).toEqual(['a-1', 'a-4', 'a-5'])
    expect(page.account.deletions).toEqual(['a-2'])
    const lines = Buffer.concat(page.account.rows).toString('utf8').split('\n').slice(0, -1)
    expect(lines.map((line) => line.split('\t').slice(0, 2))).toEqual([
      ['a-1', 'One, new'],
      ['a-4', 'Four, newer'],
      ['a-5', 'Five'],
    ])
    expect(await write(page, '2')).toEqual({ created: 2, updated: 1, deleted: 1, errors: 0 })
    const stored = await withTenant(agent.handle.db, tenantId, (tx) =>
      tx.select().from(accounts).orderBy(asc(accounts.externalId)),
    )
    expect(stored.map((a) => [a.externalId, a.name, a.deletedAt === null])).toEqual([
      ['a-1', 'One, new', true],
      ['a-2', 'Two', false],
      ['a-3', 'Three', true],
      ['a-4', 'Four, newer', true],
      ['a-5', 'Five', true],
    ])
  })

  it('stores and prints a failed statement by its code and message: bounded, no record value', async () => {
    const tenantId = await connectedTenant(agent, fake)
    const { runId } = await startRun(agent, { tenantId, connectorType: 'test-pages' })
    const target = { tenantId, connectorType: 'test-pages', runId }
    // The statement that used to fail a page: thousands of names and emails in one parameter.
    const values = Array.from({ length: 3000 }, (_, i) => `Secret Person ${i} <sp${i}@corp.test>`)
    values.push('Soft\u0000ware')
    const err: unknown = await withTenant(agent.handle.db, tenantId, (tx) =>
      tx.execute(sql`select * from json_array_elements_text(${JSON.stringify(values)}::json)`),
    ).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(String((err as Error).message).length).toBeGreaterThan(100_000)

    const outcome = await failRun(agent, target, err)
    const t = await withTenant(agent.handle.db, tenantId, async (tx) => ({
      run: (await tx.select().from(syncRuns).where(eq(syncRuns.id, runId)))[0]!,
      connector: (await connectionRows(tx))[0]!,
    }))
    const logged = agent
      .logLines()
      .split('\n')
      .filter((line) => line.includes('sync failed'))
    expect(logged).toHaveLength(1)
    for (const stored of [outcome.message, t.run.error, t.connector.lastSyncError, logged[0]]) {
      expect(stored).toMatch(/22P05/)
      expect(stored).toMatch(/unsupported Unicode escape sequence/)
      expect(stored!.length).toBeLessThanOrEqual(1000)
      expect(stored).not.toMatch(/Secret Person|corp\.test|Software|json_array_elements/)
    }

    // Any message, however long, is stored cut to 1,000 characters.
    const long = new VendorError('vendor_bad_response', `Bad page: ${'x'.repeat(5000)}`, {
      retryable: false,
    })
    const cut = await failRun(agent, target, long)
    const run = await withTenant(agent.handle.db, tenantId, (tx) =>
      tx.select().from(syncRuns).where(eq(syncRuns.id, runId)),
    )
    expect(cut.message).toHaveLength(1000)
    expect(cut.message.endsWith('…')).toBe(true)
    expect(run[0]!.error).toBe(cut.message)
  })
})

describe('a Salesforce record with NUL and lone-surrogate text', () => {
  let agent: AgentFixture
  let fake: SalesforceFake

  beforeEach(async () => {
    agent = agentFixture()
    fake = await startSalesforceFake()
  })
  afterEach(async () => {
    await fake.close()
    await agent.close()
  })

  async function connected(config: Record<string, unknown> = {}): Promise<string> {
    const tenantId = await seedTenant(agent.handle)
    await connect(
      { db: agent.handle.db, registry: agent.registry, keyring: agent.keyring, log: agent.log },
      {
        tenantId,
        connectorType: 'salesforce',
        configJson: { ...fake.connectConfig(), bulkPollIntervalMs: 5, ...config },
        userId: agent.userId,
      },
    )
    return tenantId
  }

  it.each([
    ['REST', {}],
    ['Bulk API 2.0', { bulkMinRecords: 10 }],
  ])('syncs the page over %s and stores the text cleaned', async (transport, config) => {
    const odd = fake.idOf('Account', 3)
    fake.update('Account', odd, { Industry: 'Soft\u0000ware', Name: 'Bad\ud800Surrogate' })
    const tenantId = await connected(config)
    const summary = await runSync(agent, { tenantId, connectorType: 'salesforce' })
    expect(summary).toMatchObject({ status: 'succeeded', errors: 0 })
    const bulkJobs = fake.requests.filter(
      (r) => r.method === 'POST' && r.path.endsWith('/jobs/query'),
    )
    expect(bulkJobs.length > 0).toBe(transport === 'Bulk API 2.0')
    const [row] = await withTenant(agent.handle.db, tenantId, (tx) =>
      tx.select().from(accounts).where(eq(accounts.externalId, odd)),
    )
    expect(row).toMatchObject({ industry: 'Software', name: 'Bad\ufffdSurrogate' })
    expect(row!.sourceData).toMatchObject({ Industry: 'Software', Name: 'Bad\ufffdSurrogate' })
  })
})
