import { asc, eq, sql } from 'drizzle-orm'
import jsforce from 'jsforce'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  accounts,
  activities,
  auditLog,
  connectors,
  people,
  quarantine,
  syncRuns,
} from '../../../db/schema/index.js'
import { VendorError } from '../../../shared/errors.js'
import { withTenant } from '../../../db/tenant.js'
import type { Credentials } from '../../../src-agent/connectors/interface.js'
import {
  createAuthorization,
  exchangeCode,
  readCallback,
} from '../../../src-agent/connectors/salesforce/auth.js'
import { salesforceConnector } from '../../../src-agent/connectors/salesforce/index.js'
import { credentialHooks } from '../../../src-agent/pipeline/credential-lock.js'
import { openConnection } from '../../../src-agent/pipeline/connection.js'
import {
  failRun,
  finishRun,
  runSync,
  startRun,
  type SyncRequest,
  type SyncSummary,
} from '../../../src-agent/pipeline/run-sync.js'
import { connect } from '../../../src-agent/services/connections.js'
import {
  startSalesforceFake,
  type SalesforceFake,
  type SalesforceFakeOptions,
} from '../../fakes/salesforce.js'
import { agentFixture, TEST_KEY_HEX, type AgentFixture } from '../../helpers/agent.js'
import { startBarrierProxy, type BarrierProxy } from '../../helpers/barrier-proxy.js'
import { runCli } from '../../helpers/cli.js'
import { databaseUrl, ownerDb, seedTenant } from '../../helpers/db.js'

const TYPE = 'salesforce'

describe('Salesforce connector through the real pipeline', () => {
  let agent: AgentFixture
  let fake: SalesforceFake
  const proxies: BarrierProxy[] = []

  beforeEach(() => {
    agent = agentFixture()
  })
  afterEach(async () => {
    for (const proxy of proxies.splice(0)) await proxy.close()
    await fake?.close()
    await agent.close()
  })

  async function start(options: SalesforceFakeOptions = {}): Promise<SalesforceFake> {
    fake = await startSalesforceFake(options)
    return fake
  }

  /** A tenant connected through the real connect service (authenticate + health + store). */
  async function connected(config: Record<string, unknown> = {}): Promise<string> {
    const tenantId = await seedTenant(agent.handle)
    await connect(
      { db: agent.handle.db, registry: agent.registry, keyring: agent.keyring, log: agent.log },
      {
        tenantId,
        connectorType: TYPE,
        configJson: {
          ...fake.connectConfig(),
          bulkPollIntervalMs: 5,
          ...config,
        },
        userId: agent.userId,
      },
    )
    return tenantId
  }

  const sync = (
    tenantId: string,
    extra: Pick<SyncRequest, 'pageSize' | 'full' | 'onProgress'> = {},
  ) => runSync(agent, { tenantId, connectorType: TYPE, ...extra })

  async function tables(tenantId: string) {
    return withTenant(agent.handle.db, tenantId, async (tx) => ({
      people: await tx.select().from(people).orderBy(asc(people.externalId)),
      accounts: await tx.select().from(accounts).orderBy(asc(accounts.externalId)),
      activities: await tx.select().from(activities).orderBy(asc(activities.externalId)),
      quarantine: await tx.select().from(quarantine),
      connector: (await tx.select().from(connectors))[0]!,
      runs: await tx.select().from(syncRuns),
    }))
  }

  /** The stored connection as the pipeline opens it: its row and decrypted credentials. */
  const opened = (tenantId: string) =>
    withTenant(agent.handle.db, tenantId, (tx) =>
      openConnection(tx, agent.keyring, tenantId, TYPE, salesforceConnector.secretConfigKeys),
    )

  async function stored(tenantId: string): Promise<Credentials> {
    return (await opened(tenantId)).credentials
  }

  /** The credential lock and store-and-audit hook the pipeline gives every call on a connection. */
  async function hooksFor(tenantId: string) {
    const { row } = await opened(tenantId)
    return credentialHooks(
      { handle: agent.handle, keyring: agent.keyring },
      { tenantId, connector: salesforceConnector, connectorId: row.id },
    )
  }

  const refreshAudits = (tenantId: string) =>
    withTenant(agent.handle.db, tenantId, (tx) =>
      tx.select().from(auditLog).where(eq(auditLog.action, 'connector.credentials_refresh')),
    )

  const id = (type: Parameters<SalesforceFake['idOf']>[0], index: number) => fake.idOf(type, index)
  const queries = (object: string) =>
    fake.requests.filter(
      (r) => /\/query(All)?$/.test(r.path) && new RegExp(`FROM ${object}\\b`).test(r.query.q ?? ''),
    )

  it('reads every object with exact canonical values', async () => {
    await start({ maxBatchSize: 3 })
    const tenantId = await connected()
    const summary = await sync(tenantId, { pageSize: 7 })
    expect(summary).toMatchObject({
      status: 'succeeded',
      created: 80,
      updated: 0,
      deleted: 0,
      errors: 0,
    })

    const t = await tables(tenantId)
    expect(t.quarantine).toEqual([])
    expect(t.people).toHaveLength(38)
    expect(t.accounts).toHaveLength(12)
    expect(t.activities).toHaveLength(30)
    expect(t.accounts.find((a) => a.externalId === id('Account', 1))).toMatchObject({
      source: TYPE,
      name: 'Account 1',
      domain: 'account1.example.com',
      industry: 'Finance',
      employeeCount: 20,
      annualRevenue: 250001,
      deletedAt: null,
    })
    const contact = t.people.find((p) => p.externalId === id('Contact', 7))!
    expect(contact).toMatchObject({
      email: 'contact7@example.com',
      firstName: 'First7',
      lastName: 'Last7',
      title: 'Engineer',
      phone: '+1 555 1007',
      accountExternalId: id('Account', 7),
    })
    expect(contact.sourceData).toMatchObject({
      objectType: 'Contact',
      Email: 'Contact7@Example.com',
    })
    expect(contact.sourceData).not.toHaveProperty('attributes')
    expect(t.people.find((p) => p.externalId === id('Lead', 3))).toMatchObject({
      email: 'lead3@example.org',
      firstName: 'LeadFirst3',
      phone: null,
      accountExternalId: id('Account', 3),
    })
    const opportunity = t.activities.find((a) => a.externalId === id('Opportunity', 2))!
    expect(opportunity).toMatchObject({
      type: 'opportunity',
      channel: null,
      accountExternalId: id('Account', 2),
      properties: {
        stage: 'Closed Won',
        amount: 3000,
        closeDate: '2025-06-03',
        isClosed: true,
        isWon: true,
        accountExternalId: id('Account', 2),
      },
    })
    expect(opportunity.occurredAt.toISOString()).toBe('2024-12-31T00:00:02.000Z')
    const task = t.activities.find((a) => a.externalId === id('Task', 2))!
    expect(task).toMatchObject({
      type: 'task',
      channel: 'meeting',
      personExternalId: id('Contact', 2),
      accountExternalId: id('Account', 2),
      properties: { subject: 'Task 2', status: 'Completed', isClosed: true },
    })
    expect(task.occurredAt.toISOString()).toBe('2024-12-31T23:00:02.000Z')
    expect(t.activities.find((a) => a.externalId === id('Task', 0))?.channel).toBe('email')
    expect(t.activities.find((a) => a.externalId === id('Task', 1))?.channel).toBe('call')
    const event = t.activities.find((a) => a.externalId === id('Event', 1))!
    expect(event).toMatchObject({
      type: 'event',
      channel: 'call',
      personExternalId: id('Contact', 1),
    })
    expect(event.occurredAt.toISOString()).toBe('2025-05-02T15:00:00.000Z')

    // Keyset pages over queryAll, datetimes unquoted; the server's 3-row batches followed by locator.
    const keyset = queries('Contact').filter((r) => !r.query.q?.startsWith('SELECT COUNT()'))
    expect(keyset.every((r) => r.path.endsWith('/queryAll'))).toBe(true)
    // Contact's first page was read ahead, while Accounts were (one record: see read-ahead.ts);
    // its run went on from there, 7 at a time.
    expect(keyset[0]?.query.q).toMatch(/FROM Contact ORDER BY SystemModstamp ASC, Id ASC LIMIT 1$/)
    expect(keyset[1]?.query.q).toMatch(
      /WHERE \(SystemModstamp > 2025-01-01T00:00:00Z OR \(SystemModstamp = 2025-01-01T00:00:00Z AND Id > '003FK0000000000AAA'\)\) ORDER BY SystemModstamp ASC, Id ASC LIMIT 7$/,
    )
    expect(keyset[2]?.query.q).toMatch(
      /WHERE \(SystemModstamp > 2025-01-01T00:00:07Z OR \(SystemModstamp = 2025-01-01T00:00:07Z AND Id > '003FK0000000007AAA'\)\) ORDER BY SystemModstamp ASC, Id ASC LIMIT 7$/,
    )
    // 7-record pages in batches of 3: two locator follow-ups per full page (none for the
    // one-record pages read ahead).
    expect(fake.requests.filter((r) => /\/query\/01g\w+-\d+$/.test(r.path))).toHaveLength(19)
    expect(t.connector).toMatchObject({ status: 'connected', lastSyncError: null })
  })

  it('starts reading the next object while the one before writes its last page', async () => {
    await start()
    const tenantId = await connected()
    const seen: Array<{ phase: string; stream: string | null; created: number }> = []
    const summary = await sync(tenantId, {
      pageSize: 5,
      onProgress: (p) => seen.push({ phase: p.phase, stream: p.stream, created: p.created }),
    })
    expect(summary).toMatchObject({ status: 'succeeded', created: 80, errors: 0 })
    expect(summary.streams.map((s) => [s.stream, s.status, s.created])).toEqual([
      ['accounts', 'succeeded', 12],
      ['contacts', 'succeeded', 30],
      ['leads', 'succeeded', 8],
      ['opportunities', 'succeeded', 10],
      ['tasks', 'succeeded', 14],
      ['events', 'succeeded', 6],
    ])
    // Contacts started before the 12 accounts were all committed: after the accounts' last
    // page was read, while it was written.
    const contactsStart = seen.find((p) => p.stream === 'contacts')!
    expect(contactsStart.phase).toBe('authenticating')
    expect(contactsStart.created).toBeLessThan(12)
    // The totals still reached every record, in order, and the sync ended complete.
    expect(seen.map((p) => p.created)).toEqual(
      [...seen.map((p) => p.created)].sort((a, b) => a - b),
    )
    expect(seen.at(-1)).toMatchObject({ phase: 'complete', created: 80 })
    // No run was taken for a dead process's, and the connection is not left syncing.
    const t = await tables(tenantId)
    expect(t.runs.map((r) => [r.stream, r.status, r.error])).toEqual(
      expect.arrayContaining(
        ['accounts', 'contacts', 'leads', 'opportunities', 'tasks', 'events'].map((s) => [
          s,
          'succeeded',
          null,
        ]),
      ),
    )
    expect(t.runs).toHaveLength(6)
    expect(t.connector).toMatchObject({ status: 'connected', lastSyncError: null })
  })

  /** How the first of two runs ending together ends: its run row, and the connection it leaves. */
  interface FirstEnd {
    run: { status: 'succeeded' | 'failed'; error?: string }
    connection: { status: 'connected' | 'syncing'; lastSyncError: string | null }
  }

  /**
   * Two runs of one sync (the tasks', then the events') ending at the same moment: the first
   * one's transaction, done by hand as `first` says, is held open (as far as its update of the
   * connection) until the end of the second (finishRun, or failRun with `error`) is waiting on
   * it, then committed. Returns the connection as both left it.
   */
  async function endTogether(
    tenantId: string,
    first: FirstEnd,
    error?: Error,
  ): Promise<{ status: string; lastSyncError: string | null }> {
    const target = { tenantId, connectorType: TYPE }
    const tasks = await startRun(agent, { ...target, stream: 'tasks' })
    const events = await startRun(agent, { ...target, stream: 'events', live: [tasks.runId] })
    const owner = ownerDb()
    try {
      let second: Promise<unknown> | undefined
      await withTenant(agent.handle.db, tenantId, async (tx) => {
        await tx
          .update(syncRuns)
          .set({ ...first.run, finishedAt: new Date() })
          .where(eq(syncRuns.id, tasks.runId))
        await tx.update(connectors).set(first.connection).where(eq(connectors.tenantId, tenantId))
        const [{ pid }] = (await tx.execute<{ pid: number }>(sql`select pg_backend_pid() as pid`))
          .rows as [{ pid: number }]
        const run = { ...target, runId: events.runId }
        second = error ? failRun(agent, run, error) : finishRun(agent, run)
        for (let waiting = 0; waiting === 0; await new Promise((r) => setTimeout(r, 10))) {
          const { rows } = await owner.pool.query<{ n: number }>(
            'select count(*)::int as n from pg_stat_activity where $1 = any(pg_blocking_pids(pid))',
            [pid],
          )
          waiting = rows[0]!.n
        }
      })
      await second
    } finally {
      await owner.close()
    }
    const { connector } = await tables(tenantId)
    return { status: connector.status, lastSyncError: connector.lastSyncError }
  }

  it("keeps a stream's failure on the connection when another stream's run ends at the same moment", async () => {
    await start()
    const tenantId = await connected()
    // The tasks' run failed (failRun): the connection says why.
    const connection = await endTogether(tenantId, {
      run: { status: 'failed', error: 'Tasks: no access' },
      connection: { status: 'connected', lastSyncError: 'Tasks: no access' },
    })
    expect(connection).toEqual({ status: 'connected', lastSyncError: 'Tasks: no access' })
  })

  // The tasks' run succeeded (finishRun) while the events' still ran: the connection syncing.
  const tasksFinished: FirstEnd = {
    run: { status: 'succeeded' },
    connection: { status: 'syncing', lastSyncError: null },
  }

  it('leaves the connection connected when two runs of a sync end at the same moment', async () => {
    await start()
    const tenantId = await connected()
    const connection = await endTogether(tenantId, tasksFinished)
    expect(connection).toEqual({ status: 'connected', lastSyncError: null })
  })

  it('leaves the connection connected, with the error, when a run fails for a passing reason as another ends', async () => {
    await start()
    const tenantId = await connected()
    const busy = new VendorError('vendor_unavailable', 'Salesforce is busy.', { retryable: true })
    const connection = await endTogether(tenantId, tasksFinished, busy)
    expect(connection.status).toBe('connected')
    expect(connection.lastSyncError).toMatch(/busy/)
  })

  it("leaves the connection connected when a stream's last page ends its run as another run ends", async () => {
    await start()
    const tenantId = await connected()
    // The events' query waits at a gate, so that their run is open while the test ends another.
    const gate = await startBarrierProxy(fake.url, {
      count: Number.POSITIVE_INFINITY,
      hold: (req) => decodeURIComponent(req.url ?? '').includes(' FROM Event '),
    })
    proxies.push(gate)
    const hooks = await hooksFor(tenantId)
    await hooks.onCredentialsChanged({ ...(await stored(tenantId)), instanceUrl: gate.url })
    const synced = runSync(agent, { tenantId, connectorType: TYPE, stream: 'events' })
    while (gate.held === 0) await new Promise((r) => setTimeout(r, 10))
    // Another run of the same sync (the tasks'), running as the events' is.
    const [events] = await withTenant(agent.handle.db, tenantId, (tx) =>
      tx.select({ id: syncRuns.id }).from(syncRuns).where(eq(syncRuns.status, 'running')),
    )
    const tasks = await startRun(agent, {
      tenantId,
      connectorType: TYPE,
      stream: 'tasks',
      live: [events!.id],
    })
    // The tasks' run ends (as its last page would) and is held open, with the connection
    // syncing and its row locked, until the events' last page waits on it; then it commits.
    const owner = ownerDb()
    try {
      await withTenant(agent.handle.db, tenantId, async (tx) => {
        await tx
          .update(syncRuns)
          .set({ status: 'succeeded', finishedAt: new Date() })
          .where(eq(syncRuns.id, tasks.runId))
        await tx
          .update(connectors)
          .set({ status: 'syncing' })
          .where(eq(connectors.tenantId, tenantId))
        const [{ pid }] = (await tx.execute<{ pid: number }>(sql`select pg_backend_pid() as pid`))
          .rows as [{ pid: number }]
        gate.release()
        for (let waiting = 0; waiting === 0; await new Promise((r) => setTimeout(r, 10))) {
          const { rows } = await owner.pool.query<{ n: number }>(
            'select count(*)::int as n from pg_stat_activity where $1 = any(pg_blocking_pids(pid))',
            [pid],
          )
          waiting = rows[0]!.n
        }
      })
    } finally {
      await owner.close()
    }
    expect(await synced).toMatchObject({ status: 'succeeded', created: 6 })
    // The events' last page read the connection after the tasks' end committed: both ended.
    const { connector } = await tables(tenantId)
    expect(connector).toMatchObject({ status: 'connected', lastSyncError: null })
  })

  it('reads large objects with Bulk API 2.0 into the same rows as REST, falling back where Bulk refuses', async () => {
    await start()
    const restTenant = await connected()
    expect(await sync(restTenant)).toMatchObject({ status: 'succeeded', created: 80 })
    const restFake = fake
    await start({ bulkUnsupported: ['Task'] })
    const bulkTenant = await connected({ bulkMinRecords: 10 })
    const summary = await sync(bulkTenant, { pageSize: 4 })
    expect(summary).toMatchObject({ status: 'succeeded', created: 80, errors: 0 })
    await restFake.close()

    const jobs = fake.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/jobs/query'))
    expect(jobs).toHaveLength(4) // Account, Contact, Opportunity, and Task (refused → REST)
    const pages = fake.requests.filter((r) => r.path.endsWith('/results'))
    expect(pages.length).toBeGreaterThan(10)
    expect(pages.some((r) => r.query.locator !== undefined)).toBe(true)
    expect(queries('Task').length).toBeGreaterThan(0)

    const canonical = (t: Awaited<ReturnType<typeof tables>>) => ({
      people: t.people.map(
        ({ externalId, email, firstName, lastName, title, phone, accountExternalId }) => ({
          externalId,
          email,
          firstName,
          lastName,
          title,
          phone,
          accountExternalId,
        }),
      ),
      accounts: t.accounts.map(
        ({ externalId, name, domain, industry, employeeCount, annualRevenue }) => ({
          externalId,
          name,
          domain,
          industry,
          employeeCount,
          annualRevenue,
        }),
      ),
      activities: t.activities.map(
        ({
          externalId,
          type,
          channel,
          occurredAt,
          personExternalId,
          accountExternalId,
          properties,
        }) => ({
          externalId,
          type,
          channel,
          occurredAt,
          personExternalId,
          accountExternalId,
          properties,
        }),
      ),
    })
    const viaRest = canonical(await tables(restTenant))
    const viaBulk = canonical(await tables(bulkTenant))
    expect(viaBulk).toEqual(viaRest)
    const account2 = (await tables(bulkTenant)).accounts.find(
      (a) => a.externalId === id('Account', 2),
    )!
    expect(account2.sourceData).toMatchObject({
      Description: 'Line one of 2\nSays "hello", then; more',
      NumberOfEmployees: 30,
    })

    // The next pass reads only what changed since each job started.
    fake.update('Contact', id('Contact', 4), { Title: 'CTO' })
    const next = await sync(bulkTenant)
    expect(next).toMatchObject({ status: 'succeeded', created: 0, updated: 1 })
  })

  it('creates the next object’s Bulk job while the one before is read, and reads no further ahead', async () => {
    await start()
    const tenantId = await connected({ bulkMinRecords: 10 })
    fake.requests.length = 0
    const summary = await sync(tenantId, { pageSize: 2 })
    expect(summary).toMatchObject({ status: 'succeeded', created: 80, errors: 0 })
    const log = fake.requests.map((r, at) => ({ ...r, at }))
    const jobsCreated = log
      .filter((r) => r.method === 'POST' && r.path.endsWith('/jobs/query'))
      .map((r) => r.at)
    const results = log.filter((r) => /\/jobs\/query\/750\w+\/results$/.test(r.path))
    const jobOf = (path: string): string => path.split('/').at(-2)!
    // Job ids count up: Account's, Contact's, Opportunity's, Task's (Leads and Events are small).
    const jobs = [...new Set(results.map((r) => jobOf(r.path)))].sort()
    expect(jobs).toHaveLength(4)
    expect(jobsCreated).toHaveLength(4)
    const pagesOf = (job: string): number[] =>
      results.filter((r) => jobOf(r.path) === job).map((r) => r.at)
    const account = pagesOf(jobs[0]!)
    const contact = pagesOf(jobs[1]!)
    expect(account).toHaveLength(6)
    expect(contact.length).toBeGreaterThan(2)
    // Contact's job was created before Account's last page was read…
    expect(jobsCreated[1]).toBeLessThan(account.at(-1)!)
    // …but no more of it was read before that than its first record: not even the page after
    // it, which the connector asks for as soon as a page of more than one record arrives.
    expect(contact[1]).toBeGreaterThan(account.at(-1)!)
    const t = await tables(tenantId)
    expect([t.accounts.length, t.people.length, t.activities.length]).toEqual([12, 38, 30])
  })

  it('fails the next object’s run, and only that one, when its Bulk job read ahead fails', async () => {
    await start()
    const tenantId = await connected({ bulkMinRecords: 10 })
    fake.failNextBulkJob('Contact', 'InvalidBatch : Failed to process query')
    fake.requests.length = 0
    const summary = await sync(tenantId, { pageSize: 2 })
    expect(summary.status).toBe('failed')
    expect(summary.streams.map((s) => [s.stream, s.status])).toEqual([
      ['accounts', 'succeeded'],
      ['contacts', 'failed'],
      ['leads', 'succeeded'],
      ['opportunities', 'succeeded'],
      ['tasks', 'succeeded'],
      ['events', 'succeeded'],
    ])
    expect(summary.streams[1]!.error).toMatch(/Bulk query job \w+ for Contact ended Failed/)
    // The failed job was Contact's read ahead: created before Account's last page was read.
    const log = fake.requests.map((r, at) => ({ ...r, at }))
    const created = log.filter((r) => r.method === 'POST' && r.path.endsWith('/jobs/query'))
    const accountJob = log.find((r) => /\/jobs\/query\/750\w+\/results$/.test(r.path))!
    const accountPages = log.filter((r) => r.path === accountJob.path)
    expect(created[1]!.at).toBeLessThan(accountPages.at(-1)!.at)
    const t = await tables(tenantId)
    expect([t.accounts.length, t.people.length, t.activities.length]).toEqual([12, 8, 30])
  })

  it('drops the next object’s Bulk job read ahead when the sync is stopped before it starts', async () => {
    // Contact's job, read ahead while Account is read, works for a while; once stopped, it never
    // completes.
    await start({ bulkPollsToComplete: 4 })
    const tenantId = await connected({ bulkMinRecords: 10 })
    fake.requests.length = 0
    const stop = new AbortController()
    const contactJobCreated = () =>
      fake.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/jobs/query')).length >= 2
    const syncing = runSync(agent, {
      tenantId,
      connectorType: TYPE,
      pageSize: 2,
      stop: stop.signal,
      onProgress: () => {
        if (!stop.signal.aborted && contactJobCreated()) {
          fake.stallBulkJobs(true)
          stop.abort()
        }
      },
    })
    // Were the read ahead left polling, the sync would wait for it and never end.
    const stillRunning = new Promise((resolve) => setTimeout(resolve, 10_000, 'still running'))
    const summary = await Promise.race([syncing, stillRunning])
    expect(summary).toMatchObject({ status: 'failed', errorCode: 'sync_cancelled' })
    // Only Account's run started, and nothing is asked of the org after the sync has ended.
    expect((summary as SyncSummary).streams.map((s) => s.stream)).toEqual(['accounts'])
    const asked = fake.requests.length
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    expect(fake.requests.length).toBe(asked)
    const t = await tables(tenantId)
    expect(t.people).toEqual([])
    expect(t.runs.map((r) => [r.stream, r.status])).toEqual([['accounts', 'failed']])
  })

  it('starts a new Bulk job when Salesforce forgets the one it is working on', async () => {
    // Each job is polled three times before it completes: time enough to forget the first one.
    await start({ bulkPollsToComplete: 3 })
    const tenantId = await connected({ bulkMinRecords: 10 })
    fake.requests.length = 0
    const created = () =>
      fake.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/jobs/query'))
    const watch = setInterval(() => {
      if (created().length === 1) {
        clearInterval(watch)
        fake.expireBulkJobs()
      }
    }, 5)
    try {
      const summary = await sync(tenantId, { pageSize: 2 })
      expect(summary).toMatchObject({ status: 'succeeded', created: 80, errors: 0 })
    } finally {
      clearInterval(watch)
    }
    // Account's first job was gone at its next poll; a second one read it. Then Contact,
    // Opportunity and Task.
    const gone = fake.requests.filter((r) => r.status === 404).map((r) => r.path)
    expect(gone).toHaveLength(1)
    expect(gone[0]).toMatch(/\/jobs\/query\/750\w+$/)
    expect(created()).toHaveLength(5)
    expect(agent.logLines()).toContain('salesforce bulk job gone; starting a new one')
    const t = await tables(tenantId)
    expect([t.accounts.length, t.people.length, t.activities.length]).toEqual([12, 38, 30])
  })

  it("reads an object again with a new Bulk job when the old job's results are gone", async () => {
    await start()
    const tenantId = await connected({ bulkMinRecords: 10 })
    let expired = false
    // Pages of 2: when the first page commits, the second (prefetched by the pipeline) and the
    // third (read ahead) may already be in hand; the fourth of Account's six is not.
    const summary = await sync(tenantId, {
      pageSize: 2,
      onProgress: () => {
        if (!expired && fake.requests.some((r) => r.path.endsWith('/results'))) {
          expired = true
          fake.expireBulkJobs()
        }
      },
    })
    expect(summary).toMatchObject({ status: 'succeeded', created: 80, errors: 0 })
    // Account, Contact, Opportunity and Task are read with Bulk, each with a job of its own, and
    // each object whose job was gone with a new one: Account, and Contact too when its job
    // (created while Account was read) was already under way, its results read or its status
    // still polled.
    const jobs = fake.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/jobs/query'))
    const gone = fake.requests.filter((r) => r.status === 404).map((r) => r.path)
    expect(gone.length).toBeGreaterThanOrEqual(1)
    for (const path of gone) expect(path).toMatch(/\/jobs\/query\/750\w+(\/results)?$/)
    expect(jobs.length).toBe(4 + gone.length)
    expect(agent.logLines()).toContain('salesforce bulk results gone')
    const t = await tables(tenantId)
    expect([t.accounts.length, t.people.length, t.activities.length]).toEqual([12, 38, 30])
  })

  it('applies inserts, updates and deletes incrementally', async () => {
    await start()
    const tenantId = await connected()
    await sync(tenantId)
    const inserted = fake.insert('Contact', {
      FirstName: 'New',
      LastName: 'Person',
      Email: 'new@example.com',
    })
    fake.update('Account', id('Account', 3), { Name: 'Renamed Inc' })
    fake.remove('Lead', id('Lead', 2))
    fake.remove('Event', id('Event', 0))
    fake.requests.length = 0

    const second = await sync(tenantId)
    expect(second).toMatchObject({ status: 'succeeded', created: 1, updated: 1, deleted: 2 })
    const t = await tables(tenantId)
    expect(t.people.find((p) => p.externalId === inserted.Id)).toMatchObject({
      email: 'new@example.com',
      firstName: 'New',
    })
    expect(t.accounts.find((a) => a.externalId === id('Account', 3))?.name).toBe('Renamed Inc')
    expect(t.people.find((p) => p.externalId === id('Lead', 2))?.deletedAt).toBeInstanceOf(Date)
    expect(t.activities.find((a) => a.externalId === id('Event', 0))?.deletedAt).toBeInstanceOf(
      Date,
    )
    // One query per object (stream), each from its stored position: Account 11 was read a day before
    // the org's clock, long settled, so its exact keyset.
    expect(fake.requests.filter((r) => r.path.endsWith('/queryAll'))).toHaveLength(6)
    expect(queries('Account')[0]?.query.q).toContain(`Id > '${id('Account', 11)}'`)

    // The changes just read are recent (within lookbackSeconds of the org's clock): the next
    // pass reads them again, in case a transaction stamped earlier commits late. Nothing changes.
    fake.requests.length = 0
    expect(await sync(tenantId)).toMatchObject({
      status: 'succeeded',
      created: 0,
      updated: 0,
      deleted: 0,
    })
    expect(queries('Account')[0]?.query.q).toMatch(/WHERE SystemModstamp >= \S+Z ORDER BY/)
    expect(queries('Opportunity')[0]?.query.q).toContain('Id >')
    // Ten quiet minutes later they have settled: back to exact keyset positions, one page.
    fake.advanceClock(11 * 60_000)
    await sync(tenantId)
    fake.requests.length = 0
    // One page per stream, each empty.
    expect(await sync(tenantId)).toMatchObject({ status: 'succeeded', updated: 0, pages: 6 })
    expect(queries('Account')[0]?.query.q).toContain(`Id > '${id('Account', 3)}'`)
  })

  it('keeps records that share one SystemModstamp across a page boundary', async () => {
    await start()
    const tenantId = await connected()
    await sync(tenantId)
    const ids = [3, 9, 12, 15, 20, 22, 27].map((i) => id('Contact', i))
    for (const contactId of ids) fake.update('Contact', contactId, { Title: 'Shared' })
    const stamp = fake.shareModstamp('Contact', ids)
    fake.requests.length = 0

    const summary = await sync(tenantId, { pageSize: 5 })
    expect(summary).toMatchObject({ status: 'succeeded', updated: 7, errors: 0 })
    const titles = (await tables(tenantId)).people
      .filter((p) => p.title === 'Shared')
      .map((p) => p.externalId)
    expect(titles.sort()).toEqual([...ids].sort())
    const contactQueries = queries('Contact').map((r) => r.query.q ?? '')
    expect(contactQueries).toHaveLength(2)
    expect(contactQueries[1]).toContain(
      `SystemModstamp = ${stamp.slice(0, 19)}Z AND Id > '${ids[4]}'`,
    )
  })

  it('picks up a change committed late with a SystemModstamp before the last one read', async () => {
    for (const lookbackSeconds of [600, 0]) {
      await start()
      const tenantId = await connected({ lookbackSeconds })
      await sync(tenantId)
      // Contact 5 changes in a long transaction; Contact 6 changes and commits at once, and a
      // sync reads it while Contact 5's change is still in flight.
      const late = id('Contact', 5)
      const stampedAt = fake.now()
      fake.advanceClock(30_000)
      fake.update('Contact', id('Contact', 6), { Title: 'Committed at once' })
      expect(await sync(tenantId)).toMatchObject({ status: 'succeeded', updated: 1 })
      // Now it commits, stamped when its transaction wrote it: before Contact 6.
      fake.update('Contact', late, { Title: 'Committed late' })
      fake.shareModstamp('Contact', [late], stampedAt)
      const again = await sync(tenantId)
      const title = (await tables(tenantId)).people.find((p) => p.externalId === late)?.title
      if (lookbackSeconds > 0) {
        expect(again).toMatchObject({ status: 'succeeded', created: 0, updated: 1 })
        expect(title).toBe('Committed late')
      } else {
        // Without a look-back the change is never read: why the default is ten minutes.
        expect(again).toMatchObject({ status: 'succeeded', updated: 0 })
        expect(title).not.toBe('Committed late')
      }
    }
  })

  it('reports a Bulk job that fails, and starts a new one on the next run', async () => {
    await start()
    const tenantId = await connected({ bulkMinRecords: 10 })
    fake.failNextBulkJob('Contact', 'InvalidBatch : Failed to process query')
    const failed = await sync(tenantId)
    expect(failed).toMatchObject({
      status: 'failed',
      errorCode: 'vendor_bad_response',
      retryable: true,
    })
    expect(failed.error).toMatch(
      /^Contacts: Salesforce's Bulk query job 750\w+ for Contact ended Failed: InvalidBatch/,
    )
    // Only the Contacts stream failed: the other streams landed.
    expect(failed.streams.filter((s) => s.status !== 'succeeded').map((s) => s.stream)).toEqual([
      'contacts',
    ])
    const t = await tables(tenantId)
    expect(t.accounts).toHaveLength(12)
    expect(t.people).toHaveLength(8) // the leads
    expect(t.connector.lastSyncError).toMatch(/ended Failed/)

    expect(await sync(tenantId)).toMatchObject({ status: 'succeeded', created: 30 })
  })

  it('aborts and reports a Bulk job that never finishes', async () => {
    await start()
    const tenantId = await connected({ bulkMinRecords: 10, bulkPollTimeoutMs: 200 })
    fake.stallBulkJobs(true)
    const stalled = await sync(tenantId)
    expect(stalled).toMatchObject({
      status: 'failed',
      errorCode: 'vendor_unavailable',
      retryable: true,
    })
    expect(stalled.error).toMatch(
      /Bulk query job 750\w+ for Account was still InProgress after 200 ms, so it was aborted/,
    )
    expect(
      fake.requests.some((r) => r.method === 'PATCH' && /\/jobs\/query\/750\w+$/.test(r.path)),
    ).toBe(true)
    // Every stream read with Bulk stalled; Leads (8) and Events (6) are read over REST.
    expect(stalled).toMatchObject({ created: 14 })
    fake.stallBulkJobs(false)
    expect(await sync(tenantId)).toMatchObject({ status: 'succeeded', created: 66 })
  })

  it('fails the run on a truncated read instead of calling it a success', async () => {
    await start()
    const tenantId = await connected()
    fake.truncateNext('Contact', 3)
    const short = await sync(tenantId)
    expect(short).toMatchObject({ status: 'failed', errorCode: 'sync_incomplete' })
    expect(short.error).toMatch(/announced 30 records for the Contact query but sent 3/)
    const t = await tables(tenantId)
    expect(t.accounts).toHaveLength(12)
    expect(t.people).toHaveLength(8) // the leads: only the Contacts stream failed
    expect(await sync(tenantId)).toMatchObject({ status: 'succeeded', created: 30 })

    // The same for a Bulk job whose results fall short of what it reported.
    const bulkTenant = await connected({ bulkMinRecords: 10 })
    fake.truncateNext('Account', 5)
    const bulkShort = await sync(bulkTenant)
    expect(bulkShort).toMatchObject({ status: 'failed', errorCode: 'sync_incomplete' })
    expect(bulkShort.error).toMatch(/reported 12 records but its results held 5/)
  })

  it('fails a Bulk result page whose rows disagree with its announced count, keeping the pages before', async () => {
    await start()
    const tenantId = await connected({ bulkMinRecords: 10 })
    // Accounts (12) are read over Bulk in pages of 10: the second page says 3 rows, holds 2.
    fake.miscountResultPage('Account', 1, 1)
    const over = await sync(tenantId, { pageSize: 10 })
    expect(over).toMatchObject({ status: 'failed', errorCode: 'sync_incomplete' })
    expect(over.error).toMatch(/A Bulk result page of job 750\w+ announced 3 rows but held 2/)
    let t = await tables(tenantId)
    expect(t.accounts).toHaveLength(10)
    expect(t.people).toHaveLength(38) // the other streams went on
    expect(t.quarantine).toHaveLength(0)

    // A first page that holds more rows than it says fails whole: none of its rows is written.
    const second = await connected({ bulkMinRecords: 10 })
    fake.miscountResultPage('Account', -1)
    const under = await sync(second, { pageSize: 10 })
    expect(under).toMatchObject({ status: 'failed', errorCode: 'sync_incomplete' })
    expect(under.error).toMatch(/announced 9 rows but held 10/)
    t = await tables(second)
    expect(t.accounts).toHaveLength(0)

    // A page that gives no count is counted by its rows.
    const third = await connected({ bulkMinRecords: 10 })
    fake.miscountResultPage('Account', 'no count')
    expect(await sync(third, { pageSize: 10 })).toMatchObject({ status: 'succeeded' })
    expect((await tables(third)).accounts).toHaveLength(12)

    // Nothing is owed: the next runs read both in full.
    expect(await sync(tenantId, { pageSize: 10 })).toMatchObject({ status: 'succeeded' })
    expect(await sync(second, { pageSize: 10 })).toMatchObject({ status: 'succeeded' })
    expect((await tables(tenantId)).accounts).toHaveLength(12)
    expect((await tables(second)).accounts).toHaveLength(12)
  })

  it('refreshes an access token that expires mid-sync once, and carries on', async () => {
    await start()
    const tenantId = await connected()
    const before = fake.refreshCount()
    let expired = false
    const summary = await sync(tenantId, {
      pageSize: 10,
      onProgress: () => {
        if (!expired && fake.requests.some((r) => r.path.endsWith('/queryAll'))) {
          expired = true
          fake.expireAccessTokens()
        }
      },
    })
    expect(summary).toMatchObject({ status: 'succeeded', created: 80 })
    expect(expired).toBe(true)
    expect(fake.refreshCount() - before).toBe(1)
    expect((await stored(tenantId)).accessToken).toBe(fake.accessToken)
  })

  it('refreshes once when two processes find the token expired at the same time', async () => {
    await start({ rotateRefreshTokens: true, tokenDelayMs: 500 })
    const tenantId = await connected()
    // Each process's first API call waits at this barrier until the other's arrives, however
    // long each took to start; the refresh that follows takes 500 ms, so they overlap.
    const barrier = await startBarrierProxy(fake.url, {
      count: 2,
      hold: (req) => req.headers.authorization !== undefined,
    })
    proxies.push(barrier)
    // The org's API host moves behind the barrier; the refreshed token names the fake again.
    const hooks = await hooksFor(tenantId)
    await hooks.onCredentialsChanged({ ...(await stored(tenantId)), instanceUrl: barrier.url })
    fake.expireAccessTokens()
    fake.requests.length = 0
    const refreshesBefore = fake.refreshCount()
    const refreshTokenBefore = fake.refreshToken

    // Two real agent processes: a health check and a sync of the same connection.
    const env = { DATABASE_URL: databaseUrl(), CONNECTOR_ENCRYPTION_KEY: TEST_KEY_HEX }
    const [health, synced] = await Promise.all([
      runCli(['health', TYPE, '--tenant', tenantId, '--json'], env),
      runCli(['sync', TYPE, '--tenant', tenantId, '--json'], env),
    ])
    expect(health.code, health.stderr).toBe(0)
    expect(synced.code, synced.stderr).toBe(0)
    expect(JSON.parse(health.stdout)).toMatchObject({ status: 'healthy' })
    expect(JSON.parse(synced.stdout)).toMatchObject({ status: 'succeeded', created: 80 })
    // Both met the expired token at once; one refreshed, the other waited and took its token.
    expect(barrier.held).toBe(2)
    expect(fake.requests.filter((r) => r.status === 401)).toHaveLength(2)
    expect(fake.refreshCount() - refreshesBefore).toBe(1)
    expect(fake.refreshToken).not.toBe(refreshTokenBefore)
    const latest = await stored(tenantId)
    expect(latest.refreshToken).toBe(fake.refreshToken)
    expect(latest.accessToken).toBe(fake.accessToken)
  }, 180_000)

  it('keeps working when Salesforce rotates the refresh token on every refresh', async () => {
    await start({ rotateRefreshTokens: true })
    const tenantId = await connected()
    const first = fake.refreshToken
    expect((await stored(tenantId)).refreshToken).toBe(first)
    for (let run = 0; run < 3; run++) {
      fake.expireAccessTokens()
      expect(await sync(tenantId)).toMatchObject({ status: 'succeeded' })
      expect((await stored(tenantId)).refreshToken).toBe(fake.refreshToken)
    }
    expect(fake.refreshToken).not.toBe(first)
    expect((await tables(tenantId)).connector).toMatchObject({
      status: 'connected',
      lastSyncError: null,
    })
  })

  it('marks the connection "needs re-auth" when the refresh token was revoked', async () => {
    await start()
    const tenantId = await connected()
    fake.revokeRefreshTokens()
    fake.expireAccessTokens()
    const failed = await sync(tenantId)
    expect(failed).toMatchObject({
      status: 'failed',
      errorCode: 'vendor_auth_failed',
      retryable: false,
    })
    const { connector } = await tables(tenantId)
    expect(connector.status).toBe('error')
    expect(connector.lastSyncError).toMatch(
      /^needs re-auth: .*revoked or has expired.*reconnect Salesforce/,
    )
  })

  it('pauses cleanly at the API quota threshold and resumes on the next run', async () => {
    await start({ dailyApiMax: 1000 })
    const tenantId = await connected({ quotaThreshold: 0.8 })
    fake.setApiUsage(796)
    const paused = await sync(tenantId, { pageSize: 5 })
    expect(paused).toMatchObject({
      status: 'paused',
      errorCode: 'vendor_quota_exhausted',
      retryable: true,
    })
    expect(paused.pages).toBeGreaterThan(0)
    expect(paused.error).toMatch(
      /^paused: API quota\. Salesforce API usage is at 80% of the daily limit/,
    )
    let t = await tables(tenantId)
    expect(t.connector).toMatchObject({ status: 'connected' })
    expect(t.connector.lastSyncError).toMatch(/^paused: API quota/)
    expect(t.runs.map((r) => r.status)).toEqual(['paused'])
    const before = t.accounts.length
    expect(before).toBeGreaterThan(0)
    expect(before).toBeLessThan(12)

    // Still over the threshold: the next run pauses before reading anything.
    const again = await sync(tenantId, { pageSize: 5 })
    expect(again).toMatchObject({ status: 'paused', created: 0 })

    fake.setApiUsage(0)
    const resumed = await sync(tenantId, { pageSize: 5 })
    expect(resumed).toMatchObject({ status: 'succeeded', created: 80 - before })
    t = await tables(tenantId)
    expect(t.accounts).toHaveLength(12)
    expect(t.people).toHaveLength(38)
    expect(t.activities).toHaveLength(30)
  })

  it('writes 450 scores back in three requests and reports each record', async () => {
    await start({ counts: { Account: 450 } })
    const tenantId = await connected()
    const creds = await stored(tenantId)
    const items = Array.from({ length: 450 }, (_, i) => ({
      entityType: 'account' as const,
      externalId: id('Account', i),
      fields: {
        GTM_Score__c: i / 2,
        GTM_Tier__c: i % 2 ? 'A' : 'B',
        GTM_Scored_At__c: new Date('2026-01-02T03:04:05Z'),
      },
    }))
    fake.failWriteback(id('Account', 7), {
      statusCode: 'UNABLE_TO_LOCK_ROW',
      message: 'unable to obtain exclusive access to this record',
    })
    fake.failWriteback(id('Account', 300), {
      statusCode: 'FIELD_CUSTOM_VALIDATION_EXCEPTION',
      message: 'Score must be positive',
    })
    fake.remove('Account', id('Account', 449))

    const preview = await salesforceConnector.writeback.preview(creds, items.slice(0, 2))
    expect(preview[1]).toMatchObject({
      objectType: 'Account',
      found: true,
      changes: [
        { field: 'GTM_Score__c', from: null, to: 0.5 },
        { field: 'GTM_Tier__c', from: null, to: 'A' },
        { field: 'GTM_Scored_At__c', from: null, to: '2026-01-02T03:04:05.000Z' },
      ],
    })

    fake.requests.length = 0
    const results = await salesforceConnector.writeback.send(creds, items)
    const patches = fake.requests.filter(
      (r) => r.method === 'PATCH' && r.path.endsWith('/composite/sobjects'),
    )
    expect(patches.map((r) => r.records)).toEqual([200, 200, 50])
    expect(results).toHaveLength(450)
    expect(results.filter((r) => r.ok)).toHaveLength(447)
    expect(results[7]).toEqual({
      externalId: id('Account', 7),
      ok: false,
      error: 'UNABLE_TO_LOCK_ROW: unable to obtain exclusive access to this record',
      retryable: true,
    })
    expect(results[300]).toMatchObject({
      ok: false,
      retryable: false,
      error: 'FIELD_CUSTOM_VALIDATION_EXCEPTION: Score must be positive',
    })
    expect(results[449]).toMatchObject({
      ok: false,
      retryable: false,
      error: expect.stringMatching(/^ENTITY_IS_DELETED/) as string,
    })
    expect(fake.record('Account', id('Account', 5))).toMatchObject({
      GTM_Score__c: 2.5,
      GTM_Tier__c: 'A',
      GTM_Scored_At__c: '2026-01-02T03:04:05.000+0000',
    })
    const after = await salesforceConnector.writeback.preview(creds, items.slice(5, 6))
    expect(after[0]?.changes[0]).toEqual({ field: 'GTM_Score__c', from: 2.5, to: 2.5 })
  })

  it('never writes a token or the client secret to a log line', async () => {
    const clientSecret = 'client-secret-value-123456'
    await start({ clientSecret, rotateRefreshTokens: true })
    const tenantId = await connected({ clientSecret })
    fake.expireAccessTokens()
    expect(await sync(tenantId, { pageSize: 10 })).toMatchObject({ status: 'succeeded' })
    fake.revokeRefreshTokens()
    fake.expireAccessTokens()
    expect(await sync(tenantId)).toMatchObject({ status: 'failed' })
    const lines = agent.logLines()
    expect(lines).toContain('salesforce session refreshed')
    expect(lines).toContain('sync failed')
    expect(fake.issuedTokens().length).toBeGreaterThan(3)
    for (const secret of [...fake.issuedTokens(), clientSecret]) expect(lines).not.toContain(secret)
    const { connector, runs } = await tables(tenantId)
    for (const secret of fake.issuedTokens()) {
      expect(connector.lastSyncError ?? '').not.toContain(secret)
      expect(JSON.stringify(runs)).not.toContain(secret)
    }
  })

  it('reads field lists too wide for a query URL through Bulk, never getting a 414', async () => {
    await start({ extraFields: { Account: 900 } })
    const tenantId = await connected()
    const first = await sync(tenantId)
    expect(first).toMatchObject({ status: 'succeeded', created: 80 })
    const account = (await tables(tenantId)).accounts.find(
      (a) => a.externalId === id('Account', 1),
    )!
    expect(account.sourceData).toMatchObject({ Extra_Field_900__c: '900-1', Name: '  Account 1  ' })
    fake.update('Account', id('Account', 1), { Extra_Field_900__c: 'changed' })
    expect(await sync(tenantId)).toMatchObject({ status: 'succeeded', updated: 1 })
    const jobs = fake.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/jobs/query'))
    expect(jobs).toHaveLength(2)
    expect(fake.requests.filter((r) => r.status === 414)).toEqual([])

    // Where Bulk refuses the object, the query keeps to the fields that fit.
    await fake.close()
    await start({ extraFields: { Account: 900 }, bulkUnsupported: ['Account'] })
    const narrow = await connected()
    expect(await sync(narrow)).toMatchObject({ status: 'succeeded', created: 80 })
    expect(agent.logLines()).toContain('field list too wide for a query URL')
    expect(fake.requests.filter((r) => r.status === 414)).toEqual([])
  })

  it('reports health: latency and API usage, degraded past the threshold, down when revoked', async () => {
    await start({ dailyApiMax: 1000, rotateRefreshTokens: true })
    const tenantId = await connected()
    const creds = await stored(tenantId)
    const healthy = await salesforceConnector.healthCheck(creds)
    expect(healthy).toMatchObject({ status: 'healthy', details: { apiUsage: { max: 1000 } } })
    expect(healthy.message).toMatch(
      /^Salesforce answered in \d+ ms; API usage today is \d+ of 1000 requests/,
    )

    fake.setApiUsage(900)
    expect(await salesforceConnector.healthCheck(creds)).toMatchObject({ status: 'degraded' })
    fake.setApiUsage(0)

    // With nowhere to store a new token, an expired one is reported, not refreshed.
    fake.expireAccessTokens()
    const refreshes = fake.refreshCount()
    const expired = await salesforceConnector.healthCheck(creds)
    expect(expired).toMatchObject({
      status: 'degraded',
      message: expect.stringMatching(/next sync refreshes it/) as string,
    })
    expect(fake.refreshCount()).toBe(refreshes)

    // With the pipeline's hooks (as `gtm-agent health` passes them) it refreshes, and the
    // rotated tokens are stored re-encrypted and audited.
    const hooks = await hooksFor(tenantId)
    const { row: before } = await opened(tenantId)
    expect(await refreshAudits(tenantId)).toEqual([])
    const refreshed = await salesforceConnector.healthCheck(creds, hooks)
    expect(refreshed).toMatchObject({ status: 'healthy' })
    expect(fake.refreshCount()).toBe(refreshes + 1)
    expect(fake.refreshToken).not.toBe(creds.refreshToken)
    const { row: after, credentials: latest } = await opened(tenantId)
    expect(after.encryptedCredentials).not.toBe(before.encryptedCredentials)
    expect(after.encryptedCredentials).not.toContain(fake.accessToken)
    expect(latest).toMatchObject({
      refreshToken: fake.refreshToken,
      accessToken: fake.accessToken,
      clientId: fake.clientId,
    })
    expect(await refreshAudits(tenantId)).toEqual([
      expect.objectContaining({
        userId: 'system',
        resource: 'connector',
        resourceId: after.id,
        metadata: { connectorType: TYPE },
      }),
    ])

    // A revoked refresh token: down, and nothing stored.
    fake.revokeRefreshTokens()
    fake.expireAccessTokens()
    const revoked = await salesforceConnector.healthCheck(latest, hooks)
    expect(revoked).toMatchObject({ status: 'down', details: { code: 'vendor_auth_failed' } })
    expect(revoked.message).toMatch(/revoked or has expired/)
    expect((await opened(tenantId)).row.encryptedCredentials).toBe(after.encryptedCredentials)
    expect(await refreshAudits(tenantId)).toHaveLength(1)
  })

  it("lists a stream's source fields from its object's describe", async () => {
    await start({ extraFields: { Contact: 2 } })
    const tenantId = await connected()
    const fields = await salesforceConnector.listSourceFields(await stored(tenantId), 'contacts')
    expect(fields.map((f) => f.path)).toEqual(
      expect.arrayContaining(['Id', 'Email', 'AccountId', 'Extra_Field_002__c']),
    )
    expect(fields.find((f) => f.path === 'Email')).toEqual({
      path: 'Email',
      label: 'Email',
      type: 'email',
      custom: false,
    })
  })

  it('pauses when Salesforce answers 403 REQUEST_LIMIT_EXCEEDED', async () => {
    await start({ dailyApiMax: 50 })
    const tenantId = await connected()
    fake.setApiUsage(50)
    const summary: SyncSummary = await sync(tenantId)
    expect(summary).toMatchObject({ status: 'paused', errorCode: 'vendor_quota_exhausted' })
    expect(summary.error).toMatch(/REQUEST_LIMIT_EXCEEDED/)
    const runs = await withTenant(agent.handle.db, tenantId, (tx) =>
      tx.select({ status: syncRuns.status }).from(syncRuns),
    )
    expect(runs).toEqual([{ status: 'paused' }])
  })
})

describe('the Salesforce fake speaks jsforce and OAuth as documented', () => {
  let fake: SalesforceFake
  afterEach(async () => {
    await fake.close()
  })

  it("completes the web-server flow with PKCE (ours and jsforce's) and rejects a wrong verifier", async () => {
    fake = await startSalesforceFake()
    const redirectUri = 'http://localhost:8765/callback'
    const auth = createAuthorization({ loginUrl: fake.url, clientId: fake.clientId, redirectUri })
    const answer = await fetch(auth.url, { redirect: 'manual' })
    expect(answer.status).toBe(302)
    const code = readCallback(answer.headers.get('location')!, auth.state)
    const tokens = await exchangeCode({
      loginUrl: fake.url,
      clientId: fake.clientId,
      redirectUri,
      code,
      codeVerifier: auth.codeVerifier,
    })
    expect(tokens).toMatchObject({
      instanceUrl: fake.url,
      refreshToken: fake.refreshToken,
      accessToken: fake.accessToken,
    })
    expect(() => readCallback(answer.headers.get('location')!, 'another-state')).toThrow(
      /state mismatch/,
    )

    const again = createAuthorization({ loginUrl: fake.url, clientId: fake.clientId, redirectUri })
    const second = await fetch(again.url, { redirect: 'manual' })
    const stolen = readCallback(second.headers.get('location')!, again.state)
    await expect(
      exchangeCode({
        loginUrl: fake.url,
        clientId: fake.clientId,
        redirectUri,
        code: stolen,
        codeVerifier: auth.codeVerifier,
      }),
    ).rejects.toThrow(/invalid_grant/)

    const oauth2 = new jsforce.OAuth2({
      loginUrl: fake.url,
      clientId: fake.clientId,
      redirectUri,
      useVerifier: true,
    })
    const viaJsforce = await fetch(oauth2.getAuthorizationUrl({ state: 's1' }), {
      redirect: 'manual',
    })
    const conn = new jsforce.Connection({ oauth2, version: '62.0' })
    await conn.authorize(new URL(viaJsforce.headers.get('location')!).searchParams.get('code')!)
    expect(conn.instanceUrl).toBe(fake.url)
    expect(conn.refreshToken).toBe(fake.refreshToken)
  })

  it('serves jsforce queries by locator, Bulk 2.0 results to the "null" locator, refreshes, updates and deletes', async () => {
    // No rotation here: jsforce's own refresh keeps using the first refresh token.
    fake = await startSalesforceFake({ counts: { Contact: 2_500 } })
    const oauth2 = new jsforce.OAuth2({ loginUrl: fake.url, clientId: fake.clientId })
    const conn = new jsforce.Connection({
      oauth2,
      instanceUrl: fake.url,
      refreshToken: fake.refreshToken,
      version: '62.0',
    })
    let refreshed = 0
    conn.on('refresh', () => refreshed++)
    const result = await conn.query(
      'SELECT Id, Email, SystemModstamp FROM Contact ORDER BY SystemModstamp, Id',
      {
        autoFetch: true,
        maxFetch: 10_000,
        headers: { 'Sforce-Query-Options': 'batchSize=1000' },
      },
    )
    expect(refreshed).toBe(1) // no access token yet: the first call answered 401
    expect(result).toMatchObject({ totalSize: 2500, done: true })
    expect(result.records).toHaveLength(2500)
    expect(result.records[0]).toEqual({
      attributes: {
        type: 'Contact',
        url: `/services/data/v62.0/sobjects/Contact/${fake.idOf('Contact', 0)}`,
      },
      Id: fake.idOf('Contact', 0),
      Email: 'Contact0@Example.com',
      SystemModstamp: '2025-01-01T00:00:00.000+0000',
    })
    expect(
      fake.requests
        .filter((r) => /\/query\/01g\w+-\d+$/.test(r.path))
        .map((r) => r.path.split('-')[1]),
    ).toEqual(['1000', '2000'])
    expect(conn.limitInfo.apiUsage).toEqual({ used: 3, limit: 100_000 })

    const stream = await conn.bulk2.query('SELECT Id, Name, Description FROM Account', {
      pollInterval: 10,
      pollTimeout: 5_000,
    })
    const rows: Array<Record<string, unknown>> = []
    await new Promise<void>((resolve, reject) => {
      stream
        .on('record', (row: Record<string, unknown>) => rows.push(row))
        .on('end', resolve)
        .on('error', reject)
    })
    expect(rows).toHaveLength(12)
    expect(rows[2]).toEqual({
      Id: fake.idOf('Account', 2),
      Name: 'Account 2',
      Description: 'Line one of 2\nSays "hello", then; more',
    })
    // Some jsforce versions ask for later pages as jobs/query//{id}/results: tolerated.
    const jobPath = fake.requests.find((r) => /\/jobs\/query\/750\w+$/.test(r.path))!.path
    const jobId = jobPath.slice(jobPath.lastIndexOf('/') + 1)
    const res = await fetch(
      `${fake.url}/services/data/v62.0/jobs/query//${jobId}/results?maxRecords=5`,
      { headers: { authorization: `Bearer ${conn.accessToken}` } },
    )
    expect(await res.text()).toMatch(/^Id,Name,Description\n/)
    expect(res.headers.get('sforce-numberofrecords')).toBe('5')
    expect(res.headers.get('sforce-locator')).not.toBe('null')

    const saved = await conn
      .sobject('Account')
      .update([{ Id: fake.idOf('Account', 0), GTM_Score__c: 42 }], { allOrNone: false })
    expect(saved).toEqual([{ id: fake.idOf('Account', 0), success: true, errors: [] }])
    fake.remove('Account', fake.idOf('Account', 1))
    const deleted = await conn
      .sobject('Account')
      .deleted(new Date('2025-01-01T00:00:00Z'), new Date('2030-01-01T00:00:00Z'))
    expect(deleted.deletedRecords.map((d) => d.id)).toEqual([fake.idOf('Account', 1)])
    const all = await conn.query('SELECT Id FROM Account WHERE IsDeleted = true', { scanAll: true })
    expect(all.records.map((r) => r.Id)).toEqual([fake.idOf('Account', 1)])
    expect((await conn.query('SELECT COUNT() FROM Account')).totalSize).toBe(11)

    fake.expireAccessTokens()
    expect((await conn.limits()).DailyApiRequests?.Max).toBe(100_000)
    expect(refreshed).toBe(2)
    expect(fake.refreshCount()).toBe(2)
  })
})
