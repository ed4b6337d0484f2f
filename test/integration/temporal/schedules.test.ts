import { and, eq, like } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { accounts, auditLog, syncRuns } from '../../../db/schema/index.js'
import { withTenant } from '../../../db/tenant.js'
import { syncScheduleId, syncWorkflowId } from '../../../shared/temporal.js'
import { connectorRegistry } from '../../../src-agent/connectors/registry.js'
import { keyringFromHex } from '../../../src-agent/secrets/crypto.js'
import { connect, disconnect } from '../../../src-agent/services/connections.js'
import {
  CATCHUP_WINDOW_MS,
  DISCONNECTED_NOTE,
  awaitSync,
  deleteSchedule,
  describeSchedule,
  ensureSchedule,
  listSchedules,
  onConnected,
  onDisconnected,
  pauseSchedule,
  resumeSchedule,
  startSync,
  triggerSchedule,
} from '../../../src-agent/temporal/scheduler.js'
import { cliOutput } from '../../../src-agent/cli/output.js'
import { syncViaTemporal } from '../../../src-agent/cli/sync.js'
import { startPagerFake, type PagerFake } from '../../fakes/pager.js'
import { TEST_KEY_HEX } from '../../helpers/agent.js'
import { databaseUrl } from '../../helpers/db.js'
import {
  connectTenant,
  startTemporalTestEnv,
  startTestWorker,
  waitFor,
  type TemporalTestEnv,
} from '../../helpers/temporal.js'
import '../../helpers/test-connector.js'

/** A cron that will not fire during a test run. */
const NEVER = '0 0 1 1 *'

describe('sync schedules', () => {
  let env: TemporalTestEnv
  let worker: Awaited<ReturnType<typeof startTestWorker>>
  const fakes: PagerFake[] = []

  beforeAll(async () => {
    env = await startTemporalTestEnv('schedules')
    worker = await startTestWorker(env)
  })
  afterAll(async () => {
    await worker?.stop()
    await Promise.all(fakes.map((f) => f.close()))
    await env?.close()
  })

  const connected = async (options: Parameters<typeof startPagerFake>[0], pageSize = 10) => {
    const fake = await startPagerFake(options)
    fakes.push(fake)
    const tenantId = await connectTenant(env.activityDb, 'test-pages', {
      baseUrl: fake.url,
      apiKey: fake.apiKey,
      pageSize,
    })
    return { fake, tenantId, target: { tenantId, connectorType: 'test-pages' } }
  }
  const runsOf = (tenantId: string) =>
    withTenant(env.activityDb.db, tenantId, (tx) => tx.select().from(syncRuns))
  const auditActions = (tenantId: string) =>
    withTenant(env.activityDb.db, tenantId, async (tx) =>
      (
        await tx
          .select()
          .from(auditLog)
          .where(and(eq(auditLog.userId, 'test:runner'), like(auditLog.action, 'schedule.%')))
          .orderBy(auditLog.createdAt)
      ).map((r) => r.action),
    )

  it('fires on its own and lands the synced rows', async () => {
    const { tenantId, target } = await connected({ accounts: 25 })
    await ensureSchedule(env.schedulerDeps(), { ...target, cron: '@every 2s' })
    const run = await waitFor(
      async () => (await runsOf(tenantId)).find((r) => r.status === 'succeeded'),
      { what: 'a scheduled sync', timeoutMs: 20_000 },
    )
    expect(run).toMatchObject({ mode: 'incremental', created: 25 })
    const rows = await withTenant(env.activityDb.db, tenantId, (tx) => tx.select().from(accounts))
    expect(rows).toHaveLength(25)
    // Scheduled runs are audited as the schedule's doing.
    const triggers = await withTenant(env.activityDb.db, tenantId, (tx) =>
      tx.select().from(auditLog).where(eq(auditLog.action, 'sync.trigger')),
    )
    expect(triggers[0]?.userId).toBe('schedule')
    await deleteSchedule(env.schedulerDeps(), target)
  })

  it('is created idempotently, changes cron, pauses, resumes and is deleted, each audited', async () => {
    const { tenantId, target } = await connected({ accounts: 1 })
    const deps = env.schedulerDeps()
    expect(await ensureSchedule(deps, target)).toMatchObject({
      scheduleId: syncScheduleId(tenantId, 'test-pages'),
      outcome: 'created',
      cron: '*/15 * * * *',
    })
    expect(await ensureSchedule(deps, target)).toMatchObject({ outcome: 'unchanged' })

    const raw = await env.client.schedule
      .getHandle(syncScheduleId(tenantId, 'test-pages'))
      .describe()
    expect(raw.policies).toMatchObject({ overlap: 'SKIP', catchupWindow: CATCHUP_WINDOW_MS })
    expect(raw.action).toMatchObject({ workflowType: 'launchSync', taskQueue: env.taskQueue })
    const next = (await describeSchedule(env.client, target))!.nextRunAt!
    expect(next.getUTCMinutes() % 15).toBe(0)

    expect(await ensureSchedule(deps, { ...target, cron: '30 2 * * *' })).toMatchObject({
      outcome: 'updated',
      cron: '30 2 * * *',
    })
    const changed = (await describeSchedule(env.client, target))!
    expect(changed).toMatchObject({ cron: '30 2 * * *', paused: false })
    expect([changed.nextRunAt!.getUTCHours(), changed.nextRunAt!.getUTCMinutes()]).toEqual([2, 30])
    // Ensuring without a cron keeps the one an admin chose.
    expect(await ensureSchedule(deps, target)).toMatchObject({
      outcome: 'unchanged',
      cron: '30 2 * * *',
    })

    await pauseSchedule(deps, target)
    expect(await describeSchedule(env.client, target)).toMatchObject({
      paused: true,
      note: 'Paused by test:runner',
    })
    await resumeSchedule(deps, target)
    expect(await describeSchedule(env.client, target)).toMatchObject({ paused: false })

    const listed = await waitFor(
      async () =>
        (await listSchedules(env.client, { tenantId })).find((s) => s.tenantId === tenantId),
      { what: 'the schedule in the list' },
    )
    expect(listed).toMatchObject({ connectorType: 'test-pages', cron: '30 2 * * *' })

    await expect(ensureSchedule(deps, { ...target, cron: 'every day' })).rejects.toThrow(
      /is not a cron expression/,
    )
    await deleteSchedule(deps, target)
    expect(await describeSchedule(env.client, target)).toBeUndefined()
    await expect(pauseSchedule(deps, target)).rejects.toThrow(/has no sync schedule/)

    expect(await auditActions(tenantId)).toEqual([
      'schedule.create',
      'schedule.update',
      'schedule.pause',
      'schedule.resume',
      'schedule.delete',
    ])
  })

  it('runs one sync when triggered twice at once, and a manual request joins it', async () => {
    // The first page is slow, so the sync is surely running while the requests arrive.
    const { tenantId, target, fake } = await connected({ accounts: 30, delayMs: 2_000 }, 5)
    const deps = env.schedulerDeps()
    await ensureSchedule(deps, { ...target, cron: NEVER })
    const triggers = await Promise.all([
      triggerSchedule(deps, target),
      triggerSchedule(deps, target),
    ])
    expect(triggers.map((t) => t.outcome).sort()).toEqual(['already_running', 'started'])
    expect(triggers[0].workflowId).toBe(syncWorkflowId(tenantId, 'test-pages'))
    const manual = await startSync(deps, target)
    expect(manual.outcome).toBe('already_running')
    fake.setDelay(0)
    expect(await awaitSync(manual.handle)).toMatchObject({ status: 'succeeded', created: 30 })

    const runs = await runsOf(tenantId)
    expect(runs).toHaveLength(1)
    const audited = await withTenant(env.activityDb.db, tenantId, (tx) =>
      tx.select().from(auditLog).where(eq(auditLog.action, 'schedule.trigger')),
    )
    expect(audited.map((a) => a.metadata.outcome).sort()).toEqual(['already_running', 'started'])
    await deleteSchedule(deps, target)
  })

  it('on first connection ensures the schedule and runs a full sync; reconnecting resumes it incrementally', async () => {
    const { tenantId, target, fake } = await connected({ accounts: 12 })
    const deps = env.schedulerDeps()
    const first = await onConnected(deps, target)
    expect(first).toMatchObject({ scheduleId: syncScheduleId(tenantId, 'test-pages'), full: true })
    expect(await awaitSync(first.sync.handle)).toMatchObject({
      status: 'succeeded',
      mode: 'full',
      created: 12,
    })
    expect(await describeSchedule(env.client, target)).toMatchObject({
      cron: '*/15 * * * *',
      paused: false,
    })

    // Disconnecting pauses the schedule; reconnecting resumes it and syncs incrementally.
    await disconnect(
      { db: env.activityDb.db, registry: connectorRegistry },
      { ...target, userId: 'test:runner' },
    )
    expect(await onDisconnected(deps, target)).toBe(true)
    expect(await describeSchedule(env.client, target)).toMatchObject({
      paused: true,
      note: DISCONNECTED_NOTE,
    })
    await connect(
      {
        db: env.activityDb.db,
        registry: connectorRegistry,
        keyring: keyringFromHex(TEST_KEY_HEX),
        log: env.log,
      },
      { ...target, configJson: { baseUrl: fake.url, apiKey: fake.apiKey }, userId: 'test:runner' },
    )
    fake.insert('account', { id: 'acc-new', name: 'New Co' })
    const again = await onConnected(deps, target)
    expect(again.full).toBe(false)
    expect(await describeSchedule(env.client, target)).toMatchObject({ paused: false })
    expect(await awaitSync(again.sync.handle)).toMatchObject({
      status: 'succeeded',
      mode: 'incremental',
      created: 1,
    })
    await deleteSchedule(deps, target)
  })

  it('runs a sync for the CLI (sync --via-temporal) and audits the request', async () => {
    const { tenantId } = await connected({ accounts: 7 })
    const printed: string[] = []
    const ctx = {
      env: {
        DATABASE_URL: databaseUrl(),
        TEMPORAL_ADDRESS: env.address,
        TEMPORAL_TASK_QUEUE: env.taskQueue,
        GTM_CONNECTOR_MODULES: 'test/helpers/test-connector.ts',
      },
      log: env.log,
      userId: 'cli:tester',
      out: cliOutput((text) => printed.push(text)),
    }
    const outcome = await syncViaTemporal(ctx, { type: 'test-pages', tenant: tenantId, full: true })
    expect(outcome).toMatchObject({ status: 'succeeded', mode: 'full', created: 7 })
    expect(printed.join('')).toMatch(/status: +succeeded\npages: +1\ncreated: +7\n/)
    const audit = await withTenant(env.activityDb.db, tenantId, (tx) =>
      tx.select().from(auditLog).where(eq(auditLog.userId, 'cli:tester')),
    )
    expect(audit.map((a) => a.action).sort()).toEqual(['sync.request', 'sync.trigger'])
  })

  it('refuses to schedule a connection that does not exist', async () => {
    const { tenantId } = await connected({ accounts: 1 })
    await expect(
      ensureSchedule(env.schedulerDeps(), { tenantId, connectorType: 'test-writeback' }),
    ).rejects.toThrow(/is not connected for tenant/)
  })
})
