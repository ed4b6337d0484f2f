import { eq } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { accounts, activities, connectors, people, syncRuns } from '../../../db/schema/index.js'
import { withTenant } from '../../../db/tenant.js'
import { syncWorkflowId } from '../../../shared/temporal.js'
import { sealCredentials } from '../../../src-agent/pipeline/connection.js'
import { keyringFromHex } from '../../../src-agent/secrets/crypto.js'
import { awaitSync, startSync } from '../../../src-agent/temporal/scheduler.js'
import { launchSync, syncProgressQuery } from '../../../src-agent/temporal/workflows.js'
import { startPagerFake, type PagerFake } from '../../fakes/pager.js'
import { connectionRows } from '../../helpers/connections.js'
import { startWritebackFake } from '../../fakes/writeback.js'
import { TEST_KEY_HEX } from '../../helpers/agent.js'
import {
  connectTenant,
  expectReplays,
  startTemporalTestEnv,
  startTestWorker,
  waitFor,
  type TemporalTestEnv,
} from '../../helpers/temporal.js'
import '../../helpers/test-connector.js'
import '../../helpers/writeback-connector.js'

describe('the sync workflow', () => {
  let env: TemporalTestEnv
  let worker: Awaited<ReturnType<typeof startTestWorker>>
  const fakes: Array<{ close(): Promise<void> }> = []

  beforeAll(async () => {
    env = await startTemporalTestEnv('sync')
    worker = await startTestWorker(env)
  })
  afterAll(async () => {
    await worker?.stop()
    await Promise.all(fakes.map((f) => f.close()))
    await env?.close()
  })

  const pager = async (options: Parameters<typeof startPagerFake>[0]): Promise<PagerFake> => {
    const fake = await startPagerFake(options)
    fakes.push(fake)
    return fake
  }
  const connectPager = (fake: PagerFake, pageSize = 10): Promise<string> =>
    connectTenant(env.activityDb, 'test-pages', {
      baseUrl: fake.url,
      apiKey: fake.apiKey,
      pageSize,
    })
  const sync = async (
    tenantId: string,
    connectorType: string,
    tuning: Parameters<typeof startSync>[1]['tuning'] = {},
  ) => {
    const started = await startSync(env.schedulerDeps(), { tenantId, connectorType, tuning })
    return { ...started, result: awaitSync(started.handle) }
  }
  /** Every run of the sync replays against the current workflow code; returns how many. */
  const replays = (started: { workflowId: string; firstExecutionRunId?: string | undefined }) =>
    expectReplays(env, { workflowId: started.workflowId, firstRunId: started.firstExecutionRunId })
  const rowsOf = (tenantId: string) =>
    withTenant(env.activityDb.db, tenantId, async (tx) => ({
      people: await tx.select().from(people),
      accounts: await tx.select().from(accounts),
      activities: await tx.select().from(activities),
      runs: await tx.select().from(syncRuns),
      connection: (await connectionRows(tx))[0]!,
    }))

  it('syncs in chunks, continues as new, and reports its phase and counts', async () => {
    const fake = await pager({ accounts: 30, people: 50, activities: 40, delayMs: 30 })
    const tenantId = await connectPager(fake)
    const started = await sync(tenantId, 'test-pages', { pagesPerChunk: 2, chunksPerRun: 2 })
    const { handle, result } = started
    const firstRunId = started.firstExecutionRunId!
    const midway = await waitFor(
      async () => {
        const p = await handle.query(syncProgressQuery).catch(() => undefined)
        return p && p.pages > 0 && p.phase === 'syncing' ? p : undefined
      },
      { what: 'progress mid-sync' },
    )
    expect(midway.runId).toMatch(/^[0-9a-f-]{36}$/)
    expect(midway.pages).toBeLessThan(12)

    const outcome = await result
    expect(outcome).toMatchObject({
      status: 'succeeded',
      mode: 'incremental',
      pages: 12,
      created: 120,
      updated: 0,
      chunks: 6,
    })
    expect(await handle.query(syncProgressQuery)).toMatchObject({
      phase: 'complete',
      pages: 12,
      created: 120,
    })

    // 6 chunks at 2 per run: two continue-as-new hops, one workflow id, one sync run.
    const latest = await handle.describe()
    expect(latest.runId).not.toBe(firstRunId)
    const firstHistory = await env.client.workflow
      .getHandle(handle.workflowId, firstRunId)
      .fetchHistory()
    expect(firstHistory.events?.at(-1)?.workflowExecutionContinuedAsNewEventAttributes).toBeTruthy()

    const rows = await rowsOf(tenantId)
    expect([rows.people.length, rows.accounts.length, rows.activities.length]).toEqual([50, 30, 40])
    expect(rows.runs).toHaveLength(1)
    expect(rows.runs[0]).toMatchObject({ status: 'succeeded', pages: 12, created: 120 })
    expect(rows.connection).toMatchObject({
      status: 'connected',
      cursor: '120',
      lastSyncError: null,
    })
    expect(await replays(started)).toBe(3)
  })

  it('runs once when two requests arrive together; the second reports "already running"', async () => {
    // The first page is slow, so the sync is surely running while the requests arrive.
    const fake = await pager({ accounts: 20, delayMs: 2_000 })
    const tenantId = await connectPager(fake, 5)
    const [a, b] = await Promise.all([
      startSync(env.schedulerDeps(), { tenantId, connectorType: 'test-pages' }),
      startSync(env.schedulerDeps(), { tenantId, connectorType: 'test-pages' }),
    ])
    expect([a.outcome, b.outcome].sort()).toEqual(['already_running', 'started'])
    expect(a.workflowId).toBe(syncWorkflowId(tenantId, 'test-pages'))
    // A launch (what a schedule starts) while it runs is skipped, not queued.
    const launched = await env.client.workflow.execute(launchSync, {
      workflowId: `launch-${tenantId}`,
      taskQueue: env.taskQueue,
      args: [{ tenantId, connectorType: 'test-pages' }],
    })
    expect(launched).toMatchObject({ outcome: 'skipped', workflowId: a.workflowId })
    fake.setDelay(0)
    const [ra, rb] = await Promise.all([awaitSync(a.handle), awaitSync(b.handle)])
    expect(ra).toMatchObject({ status: 'succeeded', created: 20 })
    expect(rb).toEqual(ra)
    const rows = await rowsOf(tenantId)
    expect(rows.runs).toHaveLength(1)
    expect(rows.accounts).toHaveLength(20)
    await replays([a, b].find((s) => s.outcome === 'started')!)
    await expectReplays(env, { workflowId: `launch-${tenantId}` })
  })

  it('retries a transient failure until the sync succeeds', async () => {
    const fake = await pager({ accounts: 15, failFirst: { count: 2, status: 503 } })
    const tenantId = await connectPager(fake)
    const started = await sync(tenantId, 'test-pages', { initialRetryMs: 200 })
    expect(await started.result).toMatchObject({ status: 'succeeded', created: 15 })
    // Two failed requests for the first page, then the two pages.
    expect(fake.requests).toEqual([0, 0, 0, 10])
    const rows = await rowsOf(tenantId)
    expect(rows.runs.map((r) => r.status)).toEqual(['succeeded'])
    expect(rows.connection).toMatchObject({ status: 'connected', lastSyncError: null })
    await replays(started)
  })

  it('waits for the Retry-After the source asked for when throttled', async () => {
    const fake = await startWritebackFake({
      accounts: 4,
      throttleFirst: { count: 1, retryAfterSeconds: 2 },
    })
    fakes.push(fake)
    const tenantId = await connectTenant(env.activityDb, 'test-writeback', {
      baseUrl: fake.url,
      apiKey: fake.apiKey,
    })
    const started = await sync(tenantId, 'test-writeback', { initialRetryMs: 100 })
    expect(await started.result).toMatchObject({ status: 'succeeded', created: 4 })
    const [throttled, retried] = fake.feedRequests
    expect(retried!.at - throttled!.at).toBeGreaterThanOrEqual(1_900)
    await replays(started)
  })

  it('does not retry rejected credentials and marks the connection "needs re-auth"', async () => {
    const fake = await pager({ accounts: 5 })
    const tenantId = await connectPager(fake)
    const sealed = sealCredentials(keyringFromHex(TEST_KEY_HEX), tenantId, 'test-pages', {
      baseUrl: fake.url,
      apiKey: 'a-revoked-api-key',
    })
    await withTenant(env.activityDb.db, tenantId, (tx) =>
      tx
        .update(connectors)
        .set({ encryptedCredentials: sealed })
        .where(eq(connectors.tenantId, tenantId)),
    )
    const started = await sync(tenantId, 'test-pages', { initialRetryMs: 100 })
    const { handle, result } = started
    expect(await result).toMatchObject({ status: 'failed', errorCode: 'vendor_auth_failed' })
    // One attempt of each step (plan, open, the chunk, record the failure): no retry.
    const history = await handle.fetchHistory()
    const attempts = (history.events ?? []).flatMap((e) =>
      e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes.attempt] : [],
    )
    expect(attempts).toEqual([1, 1, 1, 1])
    const rows = await rowsOf(tenantId)
    expect(rows.runs).toHaveLength(1)
    expect(rows.runs[0]!.status).toBe('failed')
    expect(rows.runs[0]!.error).toMatch(/rejected the credentials \(HTTP 401\)/)
    expect(rows.connection.status).toBe('error')
    expect(rows.connection.lastSyncError).toMatch(/^needs re-auth: /)
    await replays(started)
  })

  it('records a failed run with a readable error once retries run out', async () => {
    const fake = await pager({ accounts: 5, failFirst: { count: 100, status: 502 } })
    const tenantId = await connectPager(fake)
    const started = await sync(tenantId, 'test-pages', { maxAttempts: 3, initialRetryMs: 100 })
    const outcome = await started.result
    expect(outcome).toMatchObject({ status: 'failed', errorCode: 'vendor_unavailable' })
    expect(fake.requests).toHaveLength(3)
    const rows = await rowsOf(tenantId)
    expect(rows.runs[0]).toMatchObject({ status: 'failed' })
    expect(rows.runs[0]!.error).toBe(
      'Test pages answered HTTP 502; it will be retried. Gave up after 3 attempts.',
    )
    // A transient failure leaves the connection usable.
    expect(rows.connection.status).toBe('connected')
    await replays(started)
  })

  it('pauses on an exhausted API quota, and the next run resumes where it stopped', async () => {
    const fake = await startWritebackFake({ accounts: 20, quota: 2 })
    fakes.push(fake)
    const tenantId = await connectTenant(env.activityDb, 'test-writeback', {
      baseUrl: fake.url,
      apiKey: fake.apiKey,
      pageSize: 5,
    })
    // Two pages, then the daily limit.
    const first = await sync(tenantId, 'test-writeback', { initialRetryMs: 100 })
    expect(await first.result).toMatchObject({
      status: 'paused',
      created: 10,
      errorCode: 'vendor_quota_exhausted',
    })
    let rows = await rowsOf(tenantId)
    expect(rows.runs[0]).toMatchObject({ status: 'paused' })
    expect(rows.runs[0]!.error).toMatch(/^paused: API quota/)
    expect(rows.connection).toMatchObject({ status: 'connected', cursor: '10' })

    fake.setQuota(undefined)
    const second = await sync(tenantId, 'test-writeback')
    expect(await second.result).toMatchObject({ status: 'succeeded', created: 10 })
    expect(fake.feedRequests.map((r) => r.after)).toEqual([0, 5, 10, 15])
    rows = await rowsOf(tenantId)
    expect(rows.accounts).toHaveLength(20)
    await replays(first)
    await replays(second)
  })
})
