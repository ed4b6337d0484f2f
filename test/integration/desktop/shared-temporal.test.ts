import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startSalesforceFake, type SalesforceFake } from '../../fakes/salesforce.js'
import { uniqueTenantId } from '../../helpers/db.js'
import {
  callData,
  firstSyncDone,
  startAgentProcess,
  type AgentUnderTest,
} from '../../helpers/desktop.js'
import {
  createIsolatedDatabase,
  spawnWorkerProcess,
  startTemporalTestEnv,
  type TemporalTestEnv,
  type WorkerProcess,
} from '../../helpers/temporal.js'

/**
 * The app pointed at a shared Postgres and Temporal: it configures a connection, and an on-prem
 * `gtm-agent worker` (another process, the app runs none) syncs it.
 */
describe('the app configuring what an on-prem worker runs', () => {
  let database: { url: string; drop(): Promise<void> }
  let temporal: TemporalTestEnv
  let fake: SalesforceFake
  let worker: WorkerProcess
  let agent: AgentUnderTest

  beforeAll(async () => {
    database = await createIsolatedDatabase()
    temporal = await startTemporalTestEnv('desk-shared', { databaseUrl: database.url })
    fake = await startSalesforceFake()
    const shared = {
      DATABASE_URL: database.url,
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_TASK_QUEUE: temporal.taskQueue,
    }
    worker = spawnWorkerProcess({ ...shared, GTM_WORKFLOW_BUNDLE: temporal.bundlePath })
    await worker.ready
    agent = await startAgentProcess({ env: { ...shared, GTM_AGENT_WORKER: 'off' } })
  })
  afterAll(async () => {
    await agent?.close()
    worker?.child.kill('SIGTERM')
    await worker?.exited
    await fake?.close()
    await temporal?.close()
    await database?.drop()
  })

  it('connects from the app; the worker elsewhere runs the first sync from the schedule it made', async () => {
    const info = callData(await agent.supervisor.call('agent:info', undefined))
    expect(info.worker).toBe('off')
    const tenantId = uniqueTenantId('shared')
    callData(await agent.supervisor.call('tenants:create', { id: tenantId, name: 'Shared' }))
    callData(
      await agent.supervisor.call('connections:connect', {
        tenantId,
        connectorType: 'salesforce',
        config: { ...fake.connectConfig(), bulkPollIntervalMs: 5 },
      }),
    )
    const synced = await firstSyncDone(agent, tenantId, 'the worker to sync the connection')
    expect(synced.records).toEqual({ person: 38, account: 12, activity: 30 })
    expect(synced.streams.map((s) => s.status)).toEqual(Array(6).fill('succeeded'))
    // The schedule the app made lives in the shared Temporal.
    const schedules = temporal.client.schedule.list()
    const ids: string[] = []
    for await (const schedule of schedules) ids.push(schedule.scheduleId)
    expect(ids.some((id) => id.includes(tenantId))).toBe(true)
    // The worker process did the work; the app's agent logged no sync of its own.
    expect(worker.output()).toContain(tenantId)
  })

  it('reads and changes the schedule from the app, each change audited once, a bad cron named', async () => {
    const tenantId = uniqueTenantId('sched')
    const target = { tenantId, connectorType: 'salesforce' }
    callData(await agent.supervisor.call('tenants:create', { id: tenantId, name: 'Schedules' }))
    callData(
      await agent.supervisor.call('connections:connect', {
        ...target,
        config: { ...fake.connectConfig(), bulkPollIntervalMs: 5 },
      }),
    )
    const initial = callData(await agent.supervisor.call('schedules:get', target))
    expect(initial).toMatchObject({ cron: '*/15 * * * *', paused: false })
    expect(initial?.nextRunAt).not.toBeNull()

    const audited = async () =>
      callData(await agent.supervisor.call('audit:list', { tenantId })).filter((a) =>
        a.action.startsWith('schedule.'),
      ).length
    const steps: Array<[string, () => Promise<unknown>, Record<string, unknown>]> = [
      [
        'schedules:set',
        async () =>
          callData(await agent.supervisor.call('schedules:set', { ...target, cron: '0 * * * *' })),
        { cron: '0 * * * *', paused: false },
      ],
      [
        'schedules:pause',
        async () => callData(await agent.supervisor.call('schedules:pause', target)),
        { paused: true },
      ],
      [
        'schedules:resume',
        async () => callData(await agent.supervisor.call('schedules:resume', target)),
        { paused: false, cron: '0 * * * *' },
      ],
    ]
    for (const [method, step, expected] of steps) {
      const before = await audited()
      expect(await step(), method).toMatchObject(expected)
      expect((await audited()) - before, method).toBe(1)
    }
    const bad = await agent.supervisor.call('schedules:set', { ...target, cron: 'every hour' })
    expect(bad).toMatchObject({ ok: false, error: { code: 'config_invalid', retryable: false } })
    expect(bad.ok ? '' : bad.error.message).toMatch(/every hour/)
  })
})
