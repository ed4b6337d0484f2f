/**
 * A worker that dies while it sends a writeback batch: another worker sends the batch within the
 * writeback's heartbeat timeout, not after the activity's 5-minute start-to-close timeout, and
 * every item ends written once in the source and counted once in the queue.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { asc } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { writebackQueue } from '../../../db/schema/index.js'
import { withTenant } from '../../../db/tenant.js'
import { connectorRegistry } from '../../../src-agent/connectors/registry.js'
import '../../../src-agent/connectors/salesforce/index.js'
import { enqueueWriteback } from '../../../src-agent/temporal/writeback.js'
import { startSalesforceFake, type SalesforceFake } from '../../fakes/salesforce.js'
import {
  connectTenant,
  createIsolatedDatabase,
  startTemporalTestEnv,
  waitFor,
  type TemporalTestEnv,
} from '../../helpers/temporal.js'
import {
  logLines,
  killWorkers,
  spawnWorker,
  type WorkerProcess,
} from '../../helpers/worker-process.js'

const HEARTBEAT_TIMEOUT_MS = 2_000

describe('writeback when a worker dies mid-batch', () => {
  let database: { url: string; drop(): Promise<void> }
  let env: TemporalTestEnv
  let fake: SalesforceFake
  let dataDir: string
  const workers: WorkerProcess[] = []

  beforeAll(async () => {
    database = await createIsolatedDatabase()
    env = await startTemporalTestEnv('wbfailover', { databaseUrl: database.url })
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'gtm-wb-failover-'))
    // The first batch sent is never answered: its worker is killed while it waits.
    fake = await startSalesforceFake({ counts: { Account: 5 }, holdCollections: 1 })
  }, 60_000)
  afterAll(async () => {
    await killWorkers(workers)
    await fake?.close()
    await env?.close()
    await database?.drop()
    if (dataDir) await rm(dataDir, { recursive: true, force: true })
  }, 60_000)

  it('sends the dead worker’s batch from another worker within the heartbeat timeout', async () => {
    const first = await startedWorker()
    const tenantId = await connectTenant(env.activityDb, 'salesforce', fake.connectConfig())
    const ids = [0, 1, 2].map((i) => fake.idOf('Account', i))
    await enqueueWriteback(
      {
        client: env.client,
        taskQueue: env.taskQueue,
        handle: env.activityDb,
        registry: connectorRegistry,
        userId: 'test:runner',
      },
      {
        tenantId,
        connectorType: 'salesforce',
        items: ids.map((externalId, i) => ({
          entityType: 'account',
          externalId,
          fields: { combinedScore: 70 + i },
        })),
        workflow: { heartbeatTimeoutMs: HEARTBEAT_TIMEOUT_MS, idleTimeoutMs: 10_000 },
      },
    )
    const updates = () =>
      fake.requests.filter((r) => r.method === 'PATCH' && r.path.endsWith('/composite/sobjects'))
    await waitFor(() => updates().length === 1, {
      what: `the first worker to send its batch:\n${first.output().slice(-2000)}`,
      timeoutMs: 30_000,
    })
    first.child.kill('SIGKILL')
    expect(await first.exited).toBe('SIGKILL')
    const killedAt = Date.now()

    const second = await startedWorker(['--metrics-port', '0'])
    const rows = await waitFor(
      async () => {
        const rows = await withTenant(env.activityDb.db, tenantId, (tx) =>
          tx.select().from(writebackQueue).orderBy(asc(writebackQueue.seq)),
        )
        return rows.every((r) => r.status === 'sent') ? rows : undefined
      },
      {
        what: `the second worker to send the batch:\n${second.output().slice(-2000)}`,
        // The heartbeat timeout, the activity's first retry and the worker's start, with room;
        // far below the 5-minute start-to-close timeout a batch without heartbeats waits for.
        timeoutMs: 45_000,
      },
    )
    expect(Date.now() - killedAt).toBeLessThan(45_000)
    expect(rows.map((r) => [r.externalId, r.status, r.attempts])).toEqual(
      ids.map((id) => [id, 'sent', 1]),
    )
    // The held request never reached the org; the retried one wrote each record once.
    expect(updates()).toHaveLength(2)
    // The worker that sent them counts them, under the connection.
    const metrics = /Serving metrics at (http:\/\/\S+)\/metrics/.exec(second.output())![1]!
    const body = await (await fetch(`${metrics}/metrics`)).text()
    expect(body).toContain(
      `gtm_writeback_items_total{tenant="${tenantId}",connector="salesforce",outcome="sent"} 3`,
    )
    ids.forEach((id, i) =>
      expect(fake.record('Account', id)).toMatchObject({ GTM_Score__c: 70 + i }),
    )
  }, 120_000)

  /** A `gtm-agent worker` process, once it says it started. */
  async function startedWorker(args: string[] = []): Promise<WorkerProcess> {
    const worker = spawnWorker({
      name: `wb-failover-worker-${workers.length}`,
      env,
      databaseUrl: database.url,
      dataDir,
      args,
    })
    workers.push(worker)
    await waitFor(
      () => {
        if (worker.child.exitCode !== null) {
          throw new Error(`the worker exited:\n${worker.output().slice(-3000)}`)
        }
        return logLines(worker).some((l) => l.msg === 'worker started')
      },
      { timeoutMs: 90_000, intervalMs: 200, what: 'the worker to start' },
    )
    return worker
  }
})
