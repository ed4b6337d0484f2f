import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { asc, eq } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { DbHandle } from '../../../db/client.js'
import { connectors, people, streamState, syncRuns } from '../../../db/schema/index.js'
import { withTenant } from '../../../db/tenant.js'
import { startSalesforceFake, type SalesforceFake } from '../../fakes/salesforce.js'
import { TEST_KEY_HEX } from '../../helpers/agent.js'
import { runCli, stderrLines, type CliResult } from '../../helpers/cli.js'
import { agentDb, databaseUrl } from '../../helpers/db.js'

/**
 * Salesforce's six objects as streams, through the real `gtm-agent`: each with its own cursor,
 * run and counts; one stream read again alone; a failing stream that does not stop the others;
 * and a connection synced before streams that resumes from its old cursor without reading
 * everything again.
 */
const STREAMS = ['accounts', 'contacts', 'leads', 'opportunities', 'tasks', 'events']
// 12 accounts, 30 contacts + 8 leads, 10 opportunities + 14 tasks + 6 events by default.
const CREATED = { accounts: 12, contacts: 30, leads: 8, opportunities: 10, tasks: 14, events: 6 }

describe('Salesforce streams through gtm-agent', () => {
  let fake: SalesforceFake
  let dir: string
  let db: DbHandle
  const env = () => ({ DATABASE_URL: databaseUrl(), CONNECTOR_ENCRYPTION_KEY: TEST_KEY_HEX })
  const cli = (args: string[]) => runCli(args, env())

  beforeAll(async () => {
    fake = await startSalesforceFake()
    dir = await mkdtemp(path.join(os.tmpdir(), 'gtm-sf-streams-'))
    db = agentDb()
  })
  afterAll(async () => {
    fake.setInaccessible([])
    await fake?.close()
    await db?.close()
    await rm(dir, { recursive: true, force: true })
  })

  async function connectedTenant(): Promise<string> {
    const tenant = `sfst-${randomBytes(4).toString('hex')}`
    expect((await cli(['tenants', 'create', tenant, '--name', tenant])).code).toBe(0)
    const configFile = path.join(dir, `${tenant}.json`)
    await writeFile(configFile, JSON.stringify({ ...fake.connectConfig(), bulkPollIntervalMs: 5 }))
    const connected = await cli([
      'connect',
      'salesforce',
      '--tenant',
      tenant,
      '--config',
      configFile,
    ])
    expect(connected.code, connected.stderr).toBe(0)
    return tenant
  }

  async function sync(
    tenant: string,
    ...args: string[]
  ): Promise<{ result: CliResult; summary: Summary }> {
    const result = await cli(['sync', 'salesforce', '--tenant', tenant, '--json', ...args])
    return { result, summary: JSON.parse(result.stdout) as Summary }
  }

  const state = (tenant: string) =>
    withTenant(db.db, tenant, async (tx) => ({
      streams: await tx
        .select({
          stream: streamState.stream,
          cursor: streamState.cursor,
          lastStatus: streamState.lastStatus,
        })
        .from(streamState)
        .orderBy(asc(streamState.stream)),
      runs: await tx
        .select({
          stream: syncRuns.stream,
          status: syncRuns.status,
          created: syncRuns.created,
          mode: syncRuns.mode,
          error: syncRuns.error,
        })
        .from(syncRuns)
        .orderBy(asc(syncRuns.startedAt)),
      connection: (await tx.select().from(connectors))[0]!,
    }))

  /** The objects the fake was asked to query since request `from` (REST or Bulk). */
  const queried = (from: number): string[] =>
    fake.requests
      .slice(from)
      .map((r) => /\/sobjects\/(\w+)\/describe$/.exec(r.path)?.[1])
      .filter((o): o is string => o !== undefined)

  it('reads every stream as a run of its own, each with its own committed cursor', async () => {
    const tenant = await connectedTenant()
    const { result, summary } = await sync(tenant)
    expect(result.code, result.stderr).toBe(0)
    expect(summary).toMatchObject({ status: 'succeeded', mode: 'incremental', created: 80 })
    expect(summary.streams.map((s) => [s.stream, s.status, s.created])).toEqual(
      STREAMS.map((s) => [s, 'succeeded', CREATED[s as keyof typeof CREATED]]),
    )
    const t = await state(tenant)
    expect(t.streams.map((s) => s.stream)).toEqual([...STREAMS].sort())
    for (const s of t.streams) {
      expect(s.lastStatus).toBe('succeeded')
      const cursor = JSON.parse(s.cursor!) as { v: number; position: { stamp: string } }
      expect(cursor.v).toBe(2)
      expect(Date.parse(cursor.position.stamp)).toBeGreaterThan(0)
    }
    expect(t.runs.map((r) => r.stream)).toEqual(STREAMS)
    expect(t.connection.cursor).toBeNull()
  })

  it('reads one stream again alone with --stream --full, leaving the others where they are', async () => {
    const tenant = await connectedTenant()
    expect((await sync(tenant)).result.code).toBe(0)
    const before = await state(tenant)
    const from = fake.requests.length
    const { result, summary } = await sync(tenant, '--stream', 'leads', '--full')
    expect(result.code, result.stderr).toBe(0)
    expect(summary).toMatchObject({ status: 'succeeded', mode: 'full', created: 0, updated: 0 })
    expect(summary.streams).toEqual([
      expect.objectContaining({ stream: 'leads', status: 'succeeded', pages: 1 }),
    ])
    expect(new Set(queried(from))).toEqual(new Set(['Lead']))
    const after = await state(tenant)
    expect(after.runs.at(-1)).toMatchObject({ stream: 'leads', mode: 'full', status: 'succeeded' })
    expect(after.streams.filter((s) => s.stream !== 'leads')).toEqual(
      before.streams.filter((s) => s.stream !== 'leads'),
    )

    const unknown = await cli(['sync', 'salesforce', '--tenant', tenant, '--stream', 'Lead'])
    expect(unknown.code).toBe(1)
    expect(stderrLines(unknown)).toEqual([
      'error: Salesforce has no stream "Lead". Its streams: accounts, contacts, leads, opportunities, tasks, events.',
    ])
  })

  it('keeps syncing the other streams when one fails, and says which one failed', async () => {
    const tenant = await connectedTenant()
    fake.setInaccessible(['Task'])
    try {
      const { result, summary } = await sync(tenant)
      expect(result.code).toBe(1)
      expect(summary.status).toBe('failed')
      expect(summary.streams.map((s) => [s.stream, s.status])).toEqual(
        STREAMS.map((s) => [s, s === 'tasks' ? 'failed' : 'succeeded']),
      )
      expect(summary.created).toBe(80 - CREATED.tasks)
      const lines = stderrLines(result)
      expect(lines.at(-1)).toMatch(/^error: Tasks: /)
      const t = await state(tenant)
      expect(t.streams.find((s) => s.stream === 'tasks')).toMatchObject({
        cursor: null,
        lastStatus: 'failed',
      })
      expect(t.streams.find((s) => s.stream === 'events')).toMatchObject({
        lastStatus: 'succeeded',
      })
      expect(t.connection.lastSyncError).not.toBeNull()
    } finally {
      fake.setInaccessible([])
    }
    // Once Tasks can be read again, a sync reads them and the connection's error clears.
    const { result, summary } = await sync(tenant)
    expect(result.code, result.stderr).toBe(0)
    expect(summary.streams.find((s) => s.stream === 'tasks')).toMatchObject({
      created: CREATED.tasks,
    })
    expect((await state(tenant)).connection).toMatchObject({
      status: 'connected',
      lastSyncError: null,
    })
  })

  it('keeps a stream’s mapping overrides to that stream (mappings --stream)', async () => {
    const tenant = await connectedTenant()
    const file = path.join(dir, `${tenant}-leads.json`)
    await writeFile(
      file,
      JSON.stringify([
        { sourceField: 'LastName', targetField: 'lastName', transform: 'uppercase' },
      ]),
    )
    const target = ['--tenant', tenant, '--entity', 'person']
    const set = await cli([
      'mappings',
      'set',
      'salesforce',
      ...target,
      '--stream',
      'leads',
      '--file',
      file,
    ])
    expect(set.code, set.stderr).toBe(0)
    const lastName = (result: CliResult) =>
      (
        JSON.parse(result.stdout) as { stream?: string; mappings: Array<Record<string, unknown>> }
      ).mappings.find((m) => m.targetField === 'lastName')
    expect(
      lastName(await cli(['mappings', 'get', 'salesforce', ...target, '--stream', 'leads'])),
    ).toMatchObject({
      transform: 'uppercase',
      override: true,
    })
    expect(lastName(await cli(['mappings', 'get', 'salesforce', ...target]))).toMatchObject({
      transform: 'trim',
      override: false,
    })
    expect((await sync(tenant)).result.code).toBe(0)
    const names = await withTenant(db.db, tenant, (tx) =>
      tx.select({ externalId: people.externalId, lastName: people.lastName }).from(people),
    )
    const lead = names.find((p) => p.externalId === fake.idOf('Lead', 0))!
    const contact = names.find((p) => p.externalId === fake.idOf('Contact', 0))!
    expect(lead.lastName).toBe(
      String(fake.record('Lead', fake.idOf('Lead', 0))!.LastName).toUpperCase(),
    )
    expect(contact.lastName).toBe(fake.record('Contact', fake.idOf('Contact', 0))!.LastName)
    expect(contact.lastName).not.toBe(contact.lastName?.toUpperCase())

    const wrong = await cli([
      'mappings',
      'get',
      'salesforce',
      '--tenant',
      tenant,
      '--entity',
      'account',
      '--stream',
      'leads',
    ])
    expect(stderrLines(wrong)).toEqual([
      'error: Salesforce\'s stream "leads" produces person records, not account.',
    ])
  })

  it('moves the one cursor of a connection synced before streams into its streams, reading nothing again', async () => {
    const tenant = await connectedTenant()
    expect((await sync(tenant)).result.code).toBe(0)
    // What an agent before streams left behind: one version 1 cursor with every position.
    const positions = Object.fromEntries(
      (await state(tenant)).streams.map((s) => {
        const cursor = JSON.parse(s.cursor!) as { object: string; position: unknown }
        return [cursor.object, cursor.position]
      }),
    )
    await withTenant(db.db, tenant, async (tx) => {
      await tx.delete(streamState).where(eq(streamState.tenantId, tenant))
      await tx
        .update(connectors)
        .set({ cursor: JSON.stringify({ v: 1, next: 0, positions }) })
        .where(eq(connectors.tenantId, tenant))
    })
    fake.update('Contact', fake.idOf('Contact', 3), { Title: 'Upgraded' })
    const from = fake.requests.length
    const { result, summary } = await sync(tenant)
    expect(result.code, result.stderr).toBe(0)
    // Only the changed contact is read: no Bulk job, no full read of any object.
    expect(summary).toMatchObject({ status: 'succeeded', created: 0, updated: 1 })
    expect(fake.requests.slice(from).some((r) => r.path.includes('/jobs/query'))).toBe(false)
    // Every object is queried from its carried-over position, none from the start.
    const reads = fake.requests.slice(from).filter((r) => r.path.endsWith('/queryAll'))
    expect(reads).toHaveLength(6)
    for (const read of reads) expect(read.query.q).toMatch(/ WHERE \(?SystemModstamp /)
    const t = await state(tenant)
    expect(t.connection.cursor).toBeNull()
    expect(t.streams.map((s) => s.stream)).toEqual([...STREAMS].sort())
    // Its positions carried over: each stream's cursor starts from the old one's.
    const moved = await withTenant(db.db, tenant, (tx) =>
      tx.select().from(streamState).where(eq(streamState.stream, 'accounts')),
    )
    expect(JSON.parse(moved[0]!.cursor!)).toMatchObject({ object: 'Account' })
  })
})

interface Summary {
  status: string
  mode: string
  created: number
  updated: number
  streams: Array<{ stream: string; status: string; created: number; pages: number; runId: string }>
}
