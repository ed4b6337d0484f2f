import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { eq } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDb, type DbHandle } from '../../../db/client.js'
import { auditLog, connectors, syncRuns, writebackQueue } from '../../../db/schema/index.js'
import { withTenant } from '../../../db/tenant.js'
import { syncScheduleId, syncWorkflowId, writebackWorkflowId } from '../../../shared/temporal.js'
import { connectorRegistry } from '../../../src-agent/connectors/registry.js'
import { queueWriteback } from '../../../src-agent/pipeline/writeback/queue.js'
import { disconnect } from '../../../src-agent/services/connections.js'
import { notifyConnectionChange } from '../../../src-agent/temporal/notify.js'
import {
  DISCONNECTED_NOTE,
  describeSchedule,
  reconcileIntervalSeconds,
} from '../../../src-agent/temporal/scheduler.js'
import { runWorker } from '../../../src-agent/temporal/worker.js'
import { startPagerFake, type PagerFake } from '../../fakes/pager.js'
import { startWritebackFake } from '../../fakes/writeback.js'
import { TEST_KEY_HEX } from '../../helpers/agent.js'
import {
  connectTenant,
  createIsolatedDatabase,
  startTemporalTestEnv,
  waitFor,
  type TemporalTestEnv,
} from '../../helpers/temporal.js'
import '../../helpers/test-connector.js'
import '../../helpers/writeback-connector.js'

describe('schedule reconciliation', () => {
  // A database of its own: the worker reconciles every tenant it finds.
  let database: { url: string; drop(): Promise<void> }
  let db: DbHandle
  let env: TemporalTestEnv
  let fake: PagerFake
  let dir: string
  const controller = new AbortController()
  let worker: Promise<void> | undefined
  /**
   * Reconcile passes the worker finished. Waits below are long (30 s) because they are upper
   * bounds on a loaded machine, not speeds: each returns as soon as the event happens.
   */
  let passes = 0

  beforeAll(async () => {
    database = await createIsolatedDatabase()
    db = createDb(database.url)
    env = await startTemporalTestEnv('reconcile', { databaseUrl: database.url })
    fake = await startPagerFake({ accounts: 6 })
    dir = await mkdtemp(path.join(os.tmpdir(), 'gtm-reconcile-'))
    worker = runWorker({
      env: {
        DATABASE_URL: database.url,
        CONNECTOR_ENCRYPTION_KEY: TEST_KEY_HEX,
        TEMPORAL_ADDRESS: env.address,
        TEMPORAL_TASK_QUEUE: env.taskQueue,
        GTM_WORKFLOW_BUNDLE: env.bundlePath,
        GTM_DATA_DIR: dir,
        GTM_SCHEDULE_RECONCILE_SECONDS: '1',
      },
      log: env.log,
      signal: controller.signal,
      onReconciled: () => {
        passes += 1
      },
    })
    await waitFor(() => env.logLines().includes('"msg":"worker started"'), {
      what: 'the worker to start',
    })
  })
  afterAll(async () => {
    controller.abort()
    await worker
    await fake?.close()
    await env?.close()
    await db?.close()
    await database?.drop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  /** Resolves once a whole reconcile pass that started after this call has finished. */
  const nextWholePass = async (): Promise<void> => {
    // The first pass to finish may have started before the call; the one after it cannot have.
    const target = passes + 2
    await waitFor(() => passes >= target, { what: 'a whole reconcile pass', timeoutMs: 30_000 })
  }

  const connected = async () => {
    const tenantId = await connectTenant(db, 'test-pages', {
      baseUrl: fake.url,
      apiKey: fake.apiKey,
    })
    return { tenantId, target: { tenantId, connectorType: 'test-pages' } }
  }

  it('gives a connection made while the worker runs its schedule and a full sync, and pauses it once disconnected', async () => {
    const { tenantId, target } = await connected()
    const run = await waitFor(
      async () =>
        (await withTenant(db.db, tenantId, (tx) => tx.select().from(syncRuns))).find(
          (r) => r.status === 'succeeded',
        ),
      { what: 'the first sync', timeoutMs: 30_000 },
    )
    expect(run).toMatchObject({ mode: 'full', created: 6 })
    expect(await describeSchedule(env.client, target)).toMatchObject({
      cron: '*/15 * * * *',
      paused: false,
    })

    await disconnect({ db: db.db, registry: connectorRegistry }, { ...target, userId: 'test' })
    await waitFor(async () => (await describeSchedule(env.client, target))?.paused, {
      what: 'the schedule to be paused',
      timeoutMs: 30_000,
    })
    expect(await describeSchedule(env.client, target)).toMatchObject({ note: DISCONNECTED_NOTE })
    // A later pass leaves it be: one sync run, one pause.
    await nextWholePass()
    const runs = await withTenant(db.db, tenantId, (tx) => tx.select().from(syncRuns))
    expect(runs).toHaveLength(1)
    expect(await describeSchedule(env.client, target)).toMatchObject({
      paused: true,
      note: DISCONNECTED_NOTE,
    })
    const pauses = await withTenant(db.db, tenantId, (tx) =>
      tx.select().from(auditLog).where(eq(auditLog.action, 'schedule.pause')),
    )
    expect(pauses.map((a) => a.userId)).toEqual(['system'])
  })

  it('sends writeback updates queued while no workflow ran', async () => {
    const crm = await startWritebackFake()
    try {
      const tenantId = await connectTenant(db, 'test-writeback', {
        baseUrl: crm.url,
        apiKey: crm.apiKey,
      })
      // Queued without a signal, as `writeback enqueue` does when Temporal is away.
      const { queued } = await queueWriteback(
        { handle: db, registry: connectorRegistry, userId: 'test' },
        {
          tenantId,
          connectorType: 'test-writeback',
          items: ['001-1', '001-2', '001-3'].map((id, i) => ({
            entityType: 'account',
            externalId: id,
            fields: { score: 10 + i },
          })),
        },
      )
      expect(queued).toBe(3)
      const rows = await waitFor(
        async () => {
          const rows = await withTenant(db.db, tenantId, (tx) => tx.select().from(writebackQueue))
          return rows.every((r) => r.status === 'sent') ? rows : undefined
        },
        { what: 'the reconcile pass to send the queued updates', timeoutMs: 30_000 },
      )
      expect(rows).toHaveLength(3)
      expect(crm.applied.get('001-3')).toEqual({ Score__c: 12 })
      const handle = env.client.workflow.getHandle(writebackWorkflowId(tenantId, 'test-writeback'))
      expect((await handle.describe()).status.name).toBe('RUNNING')
      await handle.terminate('test done')
    } finally {
      await crm.close()
    }
  })

  it('tells a reachable Temporal about connection changes', async () => {
    const { tenantId, target } = await connected()
    const ctx = {
      env: {
        DATABASE_URL: database.url,
        TEMPORAL_ADDRESS: env.address,
        TEMPORAL_TASK_QUEUE: env.taskQueue,
      },
      log: env.log,
      userId: 'cli:tester',
    }
    const made = await notifyConnectionChange(ctx, { ...target, change: 'connected' })
    expect(made).toMatchObject({
      scheduled: true,
      scheduleId: syncScheduleId(tenantId, 'test-pages'),
      workflowId: syncWorkflowId(tenantId, 'test-pages'),
      cron: '*/15 * * * *',
      workerRunning: true,
    })
    await waitFor(
      async () =>
        (await withTenant(db.db, tenantId, (tx) => tx.select().from(connectors)))[0]?.lastSyncAt,
      { what: 'the first sync', timeoutMs: 30_000 },
    )
    await disconnect({ db: db.db, registry: connectorRegistry }, { ...target, userId: 'test' })
    expect(await notifyConnectionChange(ctx, { ...target, change: 'disconnected' })).toEqual({
      scheduled: true,
      change: 'disconnected',
      scheduleId: syncScheduleId(tenantId, 'test-pages'),
      paused: true,
    })
    const row = await withTenant(db.db, tenantId, (tx) =>
      tx.select().from(connectors).where(eq(connectors.tenantId, tenantId)),
    )
    expect(row[0]?.status).toBe('disconnected')
  })

  it('starts nothing when Temporal is not running', async () => {
    const { target } = await connected()
    const empty = await mkdtemp(path.join(os.tmpdir(), 'gtm-no-temporal-'))
    try {
      const result = await notifyConnectionChange(
        { env: { DATABASE_URL: database.url, GTM_DATA_DIR: empty }, log: env.log, userId: 'test' },
        { ...target, change: 'connected' },
      )
      expect(result.scheduled).toBe(false)
      expect(!result.scheduled && result.reason).toMatch(/TEMPORAL_ADDRESS is not set/)
      expect(existsSync(path.join(empty, 'temporal'))).toBe(false)
    } finally {
      await rm(empty, { recursive: true, force: true })
    }
  })

  it('validates GTM_SCHEDULE_RECONCILE_SECONDS', () => {
    expect(reconcileIntervalSeconds({})).toBe(60)
    expect(reconcileIntervalSeconds({ GTM_SCHEDULE_RECONCILE_SECONDS: ' 5 ' })).toBe(5)
    for (const bad of ['0', '-3', '1.5', 'soon', '100000']) {
      expect(() => reconcileIntervalSeconds({ GTM_SCHEDULE_RECONCILE_SECONDS: bad })).toThrow(
        /GTM_SCHEDULE_RECONCILE_SECONDS must be a whole number of seconds/,
      )
    }
  })
})
