import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { Client, Connection } from '@temporalio/client'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createDb, type DbHandle } from '../../../db/client.js'
import { accounts, syncRuns } from '../../../db/schema/index.js'
import { withTenant } from '../../../db/tenant.js'
import {
  awaitSync,
  describeSchedule,
  ensureSchedule,
  startSync,
} from '../../../src-agent/temporal/scheduler.js'
import { startWritebackFake, type WritebackFake } from '../../fakes/writeback.js'
import {
  connectTenant,
  createIsolatedDatabase,
  spawnWorkerProcess,
  startTemporalTestEnv,
  testTemporalCli,
  waitFor,
  type TemporalTestEnv,
  type WorkerProcess,
} from '../../helpers/temporal.js'
import '../../helpers/writeback-connector.js'

const CONNECTOR_MODULES = 'test/helpers/writeback-connector.ts'

describe('worker processes', () => {
  let database: { url: string; drop(): Promise<void> }
  let db: DbHandle
  let env: TemporalTestEnv
  let fake: WritebackFake
  const workers: WorkerProcess[] = []
  const dirs: string[] = []

  beforeAll(async () => {
    database = await createIsolatedDatabase()
    db = createDb(database.url)
    env = await startTemporalTestEnv('process', { databaseUrl: database.url })
  })
  afterEach(async () => {
    // Whatever a failed test left running.
    for (const w of workers.splice(0)) {
      if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL')
      await w.exited
    }
  })
  afterAll(async () => {
    // A dev server whose worker was killed by a failing test is not left behind.
    for (const dir of dirs) {
      const info = await serverInfo(dir).catch(() => undefined)
      if (info && isAlive(info.pid)) process.kill(info.pid, 'SIGKILL')
    }
    await fake?.close()
    await env?.close()
    await db?.close()
    await database?.drop()
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })))
  })

  const tempDir = async (): Promise<string> => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'gtm-worker-'))
    dirs.push(dir)
    return dir
  }
  const spawnWorker = (extra: Record<string, string>): WorkerProcess => {
    const worker = spawnWorkerProcess({
      DATABASE_URL: database.url,
      GTM_CONNECTOR_MODULES: CONNECTOR_MODULES,
      GTM_WORKFLOW_BUNDLE: env.bundlePath,
      TEMPORAL_TASK_QUEUE: env.taskQueue,
      ...extra,
    })
    workers.push(worker)
    return worker
  }
  /** Stops a worker with SIGTERM and expects a clean exit (its log in the failure message). */
  const stop = async (worker: WorkerProcess): Promise<void> => {
    worker.child.kill('SIGTERM')
    expect(await worker.exited, worker.output().slice(-4000)).toBe(0)
  }

  it('finishes a sync with exactly the expected rows after its worker is killed mid-sync', async () => {
    fake = await startWritebackFake({ accounts: 200, delayMs: 100 })
    const tenantId = await connectTenant(db, 'test-writeback', {
      baseUrl: fake.url,
      apiKey: fake.apiKey,
      pageSize: 10,
    })
    // Started before the worker, whose first reconcile pass would otherwise start the
    // connection's first sync itself (with the default tuning).
    const deps = { ...env.schedulerDeps(), handle: db }
    const started = await startSync(deps, {
      tenantId,
      connectorType: 'test-writeback',
      tuning: { pagesPerChunk: 4, heartbeatTimeoutMs: 3_000, initialRetryMs: 200 },
    })
    const dataDir = await tempDir()
    const first = spawnWorker({ TEMPORAL_ADDRESS: env.address, GTM_DATA_DIR: dataDir })
    await first.ready
    const count = async () =>
      (await withTenant(db.db, tenantId, (tx) => tx.select().from(accounts))).length
    await waitFor(async () => (await count()) >= 50, { what: 'five committed pages' })
    first.child.kill('SIGKILL')
    expect(await first.exited).toBe('SIGKILL')
    const committed = await count()
    expect(committed).toBeLessThan(200)

    const second = spawnWorker({ TEMPORAL_ADDRESS: env.address, GTM_DATA_DIR: dataDir })
    await second.ready
    const outcome = await awaitSync(started.handle)
    expect(outcome).toMatchObject({ status: 'succeeded', pages: 20, created: 200, updated: 0 })

    const rows = await withTenant(db.db, tenantId, (tx) => tx.select().from(accounts))
    expect(rows).toHaveLength(200)
    expect(new Set(rows.map((r) => r.externalId)).size).toBe(200)
    const runs = await withTenant(db.db, tenantId, (tx) => tx.select().from(syncRuns))
    expect(runs).toHaveLength(1)
    expect(runs[0]).toMatchObject({ status: 'succeeded', created: 200, pages: 20 })
    // The retried chunk resumed at the last committed page, not from the start: only a page in
    // flight when an attempt ended is asked for again.
    const asked = fake.feedRequests.map((r) => r.after)
    expect(new Set(asked)).toEqual(new Set(Array.from({ length: 20 }, (_, i) => i * 10)))
    expect(asked.filter((after) => after === 0)).toHaveLength(1)
    expect(asked.length).toBeLessThanOrEqual(23)

    await stop(second)
  }, 90_000)

  it('starts its own Temporal without TEMPORAL_ADDRESS, and schedules survive a restart', async () => {
    const crm = await startWritebackFake({ accounts: 1 })
    try {
      const tenantId = await connectTenant(db, 'test-writeback', {
        baseUrl: crm.url,
        apiKey: crm.apiKey,
      })
      const dataDir = await tempDir()
      const embedded = { GTM_DATA_DIR: dataDir, TEMPORAL_CLI_PATH: testTemporalCli() }
      const target = { tenantId, connectorType: 'test-writeback' }

      const first = spawnWorker(embedded)
      await first.ready
      expect(first.output()).toContain('"embeddedTemporal":true')
      const info = await serverInfo(dataDir)
      await withClient(info.port, async (client) => {
        // The worker gave the connection its schedule when it started.
        expect(await describeSchedule(client, target)).toMatchObject({ cron: '*/15 * * * *' })
        const deps = { client, taskQueue: env.taskQueue, handle: db, userId: 'test:runner' }
        await ensureSchedule(deps, { ...target, cron: '0 0 1 1 *' })
      })
      await stop(first)
      // Stopped gracefully: the worker, then the dev server it started.
      expect(isAlive(info.pid)).toBe(false)
      expect(existsSync(path.join(dataDir, 'temporal', 'server.json'))).toBe(false)
      expect(existsSync(path.join(dataDir, 'temporal', 'temporal.db'))).toBe(true)

      const second = spawnWorker(embedded)
      await second.ready
      const again = await serverInfo(dataDir)
      await withClient(again.port, async (client) => {
        expect(await describeSchedule(client, target)).toMatchObject({
          cron: '0 0 1 1 *',
          paused: false,
        })
      })
      await stop(second)
      expect(isAlive(again.pid)).toBe(false)
    } finally {
      await crm.close()
    }
  }, 90_000)
})

async function serverInfo(dataDir: string): Promise<{ pid: number; port: number }> {
  const text = await readFile(path.join(dataDir, 'temporal', 'server.json'), 'utf8')
  return JSON.parse(text) as { pid: number; port: number }
}

async function withClient(port: number, fn: (client: Client) => Promise<void>): Promise<void> {
  const connection = await Connection.connect({ address: `127.0.0.1:${port}` })
  try {
    await fn(new Client({ connection }))
  } finally {
    await connection.close()
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
