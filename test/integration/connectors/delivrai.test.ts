import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { and, asc, eq } from 'drizzle-orm'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { activities, auditLog, connectors, quarantine } from '../../../db/schema/index.js'
import { withTenant } from '../../../db/tenant.js'
import { startDelivrFake, type DelivrFake } from '../../fakes/delivr.js'
import { TEST_KEY_HEX } from '../../helpers/agent.js'
import { runCli, stderrLines } from '../../helpers/cli.js'
import { databaseUrl, ownerDb, uniqueTenantId } from '../../helpers/db.js'

const DAY = 86_400_000
const ago = (days: number, extraMs = 0) => new Date(Date.now() - days * DAY + extraMs).toISOString()

describe('Delivr.ai (delivrai): intent signals and member engagement through the CLI', () => {
  let fake: DelivrFake
  let dir: string
  const owner = ownerDb()
  const env = () => ({ DATABASE_URL: databaseUrl(), CONNECTOR_ENCRYPTION_KEY: TEST_KEY_HEX })

  // A fake of its own for each test: what one test adds never shows in another's sync.
  beforeEach(async () => {
    fake = await startDelivrFake()
  })
  afterEach(async () => {
    await fake.close()
  })
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'gtm-delivr-'))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
    await owner.close()
  })

  const configFile = async (config: Record<string, unknown>): Promise<string> => {
    const file = path.join(dir, `delivr-${Math.random().toString(36).slice(2)}.json`)
    await writeFile(file, JSON.stringify(config))
    return file
  }
  const newTenant = async (): Promise<string> => {
    const tenantId = uniqueTenantId('dlvr')
    const created = await runCli(['tenants', 'create', tenantId, '--name', 'Delivr'], env())
    expect(created.code, created.stderr).toBe(0)
    return tenantId
  }
  const connectTenant = async (tenantId: string) => {
    const file = await configFile({ apiKey: fake.apiKey, baseUrl: fake.url })
    const connected = await runCli(
      ['connect', 'delivrai', '--tenant', tenantId, '--config', file],
      env(),
    )
    expect(connected.code, connected.stderr).toBe(0)
  }
  const sync = async (tenantId: string, extra: string[] = []) => {
    const result = await runCli(
      ['sync', 'delivrai', '--tenant', tenantId, '--json', ...extra],
      env(),
    )
    return {
      ...result,
      summary:
        result.code === 0 ? (JSON.parse(result.stdout) as Record<string, unknown>) : undefined,
    }
  }
  const rows = (tenantId: string) =>
    withTenant(owner.db, tenantId, (tx) =>
      tx
        .select()
        .from(activities)
        .where(and(eq(activities.tenantId, tenantId), eq(activities.source, 'delivrai')))
        .orderBy(asc(activities.occurredAt)),
    )

  it('refuses a wrong API key in one error line and stores nothing', async () => {
    const tenantId = await newTenant()
    const file = await configFile({ apiKey: 'dlvr_wrong_key_123', baseUrl: fake.url })
    const result = await runCli(
      ['connect', 'delivrai', '--tenant', tenantId, '--config', file],
      env(),
    )
    expect(result.code).toBe(1)
    const errors = stderrLines(result).filter((l) => l.startsWith('error:'))
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatch(/Delivr\.ai/)
    expect(result.stdout + result.stderr).not.toContain('dlvr_wrong_key_123')
    const stored = await withTenant(owner.db, tenantId, async (tx) => ({
      connections: await tx.select().from(connectors).where(eq(connectors.tenantId, tenantId)),
      audit: await tx.select().from(auditLog).where(eq(auditLog.tenantId, tenantId)),
    }))
    expect(stored.connections).toEqual([])
    expect(stored.audit.map((a) => a.action)).toEqual(['tenant.create'])
  })

  it('reads exactly the last 90 days on the first sync, page by page, then only what is new', async () => {
    const tenantId = await newTenant()
    const feedStart = fake.requests.length
    fake.addSignal({ id: 'sig-old', occurredAt: ago(90, -60_000) })
    const sig1At = ago(89)
    const windowStart = ago(7)
    fake.addSignal({
      id: 'sig-1',
      occurredAt: sig1At,
      personId: 'p-ada',
      personEmail: 'Ada@Acme.com',
      accountDomain: 'Acme.com',
      contentUrl: 'https://vendor.example/pricing',
      contentTopic: 'Data Warehousing',
      dwellTimeSeconds: 93,
      sessionId: 'sess-1',
    })
    for (const [i, days] of [10, 5, 2, 1].entries()) {
      fake.addSignal({ id: `sig-${i + 2}`, occurredAt: ago(days), accountDomain: 'globex.com' })
    }
    fake.addEngagement({
      personId: 'p-ada',
      accountDomain: 'acme.com',
      topic: 'Data Warehousing',
      score: 87,
      surge: true,
      windowStart,
      windowEnd: ago(0, -3_600_000),
    })
    await connectTenant(tenantId)
    const first = await sync(tenantId, ['--page-size', '2'])
    expect(first.code, first.stderr).toBe(0)
    expect(first.summary).toMatchObject({ status: 'succeeded', created: 6, updated: 0, errors: 0 })

    // Three pages of two signals (the last one empty of more), one page of engagement.
    const signalCalls = fake.requests
      .slice(feedStart)
      .filter((r) => r.path === '/v1/intent-signals')
    expect(signalCalls.map((r) => r.query['limit'])).toEqual(['2', '2', '2'])
    const since = Date.parse(signalCalls[0]!.query['since']!)
    expect(Math.abs(since - (Date.now() - 90 * DAY))).toBeLessThan(60_000)
    expect(signalCalls[1]!.query['cursor']).toBeTruthy()

    const stored = await rows(tenantId)
    expect(stored.map((r) => r.externalId)).toEqual([
      'sig-1',
      'sig-2',
      'sig-3',
      'sig-4',
      'sig-5',
      `engagement:p-ada:acme.com:Data Warehousing:${windowStart}`,
    ])
    expect(stored[0]).toMatchObject({
      type: 'intent_signal',
      channel: 'intent',
      personExternalId: 'p-ada',
      accountExternalId: 'acme.com',
      properties: {
        domain: 'acme.com',
        topic: 'Data Warehousing',
        url: 'https://vendor.example/pricing',
        dwellTimeSeconds: 93,
        email: 'ada@acme.com',
        sessionId: 'sess-1',
      },
    })
    expect(stored[0]!.occurredAt.toISOString()).toBe(sig1At)
    expect(stored.at(-1)).toMatchObject({
      type: 'member_engagement',
      channel: 'intent',
      personExternalId: 'p-ada',
      accountExternalId: 'acme.com',
      properties: { topic: 'Data Warehousing', score: 87, surge: true, windowStart },
    })

    // Nothing new: nothing written. Then one new signal: only it.
    const again = await sync(tenantId)
    expect(again.summary).toMatchObject({ status: 'succeeded', created: 0, updated: 0 })
    fake.addSignal({ id: 'sig-new', occurredAt: ago(0, -60_000) })
    const later = await sync(tenantId)
    expect(later.summary).toMatchObject({ status: 'succeeded', created: 1, updated: 0 })
    const lastSignalCall = fake.requests.filter((r) => r.path === '/v1/intent-signals').at(-1)!
    expect(Date.parse(lastSignalCall.query['since']!)).toBeGreaterThan(Date.now() - 2 * DAY)
    expect((await rows(tenantId)).map((r) => r.externalId)).toContain('sig-new')
  })

  it('waits out several 429s as Delivr.ai asks, and quarantines a malformed row while the rest lands', async () => {
    const tenantId = await newTenant()
    fake.addRawSignal({
      id: 'sig-bad',
      occurredAt: 'yesterday',
      personId: 'p-x',
      accountDomain: 'initech.com',
    })
    fake.addSignal({ id: 'sig-ok', occurredAt: ago(3, 1_000), accountDomain: 'initech.com' })
    await connectTenant(tenantId)
    fake.throttleNext(2, 1)
    const result = await sync(tenantId, ['--stream', 'intent_signals'])
    expect(result.code, result.stderr).toBe(0)
    expect(result.summary).toMatchObject({ status: 'succeeded', errors: 1 })
    expect(fake.requests.filter((r) => r.status === 429)).toHaveLength(2)
    expect((await rows(tenantId)).map((r) => r.externalId)).toContain('sig-ok')
    const rejected = await withTenant(owner.db, tenantId, (tx) =>
      tx.select().from(quarantine).where(eq(quarantine.tenantId, tenantId)),
    )
    expect(rejected.map((r) => r.externalId)).toEqual(['sig-bad'])
    expect(rejected[0]!.reason).toMatch(/occurredAt/)
  })

  it('says whether it is healthy, and is listed with its streams', async () => {
    const tenantId = await newTenant()
    await connectTenant(tenantId)
    const healthy = await runCli(['health', 'delivrai', '--tenant', tenantId, '--json'], env())
    expect(healthy.code, healthy.stderr).toBe(0)
    expect(JSON.parse(healthy.stdout)).toMatchObject({ status: 'healthy' })

    const listed = await runCli(['connectors', '--json'], env())
    const delivr = (
      JSON.parse(listed.stdout) as Array<{ id: string; streams: Array<{ id: string }> }>
    ).find((c) => c.id === 'delivrai')
    expect(delivr?.streams.map((s) => s.id)).toEqual(['intent_signals', 'member_engagement'])

    const down = await startDelivrFake({ apiKey: 'dlvr_other_key_0000' })
    const file = await configFile({ apiKey: 'dlvr_other_key_0000', baseUrl: down.url })
    const other = await newTenant()
    expect(
      (await runCli(['connect', 'delivrai', '--tenant', other, '--config', file], env())).code,
    ).toBe(0)
    await down.close()
    const unhealthy = await runCli(['health', 'delivrai', '--tenant', other, '--json'], env())
    expect(JSON.parse(unhealthy.stdout)).toMatchObject({ status: 'down' })
  })
})
