import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDb, type DbHandle } from '../../../db/client.js'
import { startSalesforceFake, type SalesforceFake } from '../../fakes/salesforce.js'
import '../../../src-agent/connectors/salesforce/index.js'
import { TEST_KEY_HEX } from '../../helpers/agent.js'
import { runCli, type CliResult } from '../../helpers/cli.js'
import { freePort } from '../../helpers/ports.js'
import { startTcpProxy, type TcpProxy } from '../../helpers/tcp-proxy.js'
import {
  connectTenant,
  createIsolatedDatabase,
  startTemporalTestEnv,
  waitFor,
  type TemporalTestEnv,
} from '../../helpers/temporal.js'

/** The connection's streams and the records the fake serves for each. */
const COUNTS = { Account: 7, Contact: 9, Lead: 4, Opportunity: 3, Task: 5, Event: 2 }
const STREAMS: Record<string, keyof typeof COUNTS> = {
  accounts: 'Account',
  contacts: 'Contact',
  leads: 'Lead',
  opportunities: 'Opportunity',
  tasks: 'Task',
  events: 'Event',
}

describe('operating the worker: metrics, health and status', () => {
  let env: TemporalTestEnv
  let database: { url: string; drop(): Promise<void> }
  let db: DbHandle
  let owner: DbHandle
  let fake: SalesforceFake
  let proxy: TcpProxy
  let dataDir: string
  let tenantId: string
  let worker: ChildProcess | undefined
  let workerDone: Promise<CliResult> | undefined
  let stdout = ''
  let stderr = ''
  let base = ''
  let sdkPort = 0
  /** Requests the fake had answered before the worker started (the connect's health check). */
  let beforeWorker = 0

  const agentEnv = (databaseUrl: string) => ({
    DATABASE_URL: databaseUrl,
    CONNECTOR_ENCRYPTION_KEY: TEST_KEY_HEX,
    TEMPORAL_ADDRESS: env.address,
    TEMPORAL_TASK_QUEUE: env.taskQueue,
    GTM_WORKFLOW_BUNDLE: env.bundlePath,
    GTM_DATA_DIR: dataDir,
  })

  beforeAll(async () => {
    database = await createIsolatedDatabase()
    env = await startTemporalTestEnv('operations', { databaseUrl: database.url })
    db = createDb(database.url)
    owner = createDb(database.url, { asOwner: true })
    fake = await startSalesforceFake({ counts: COUNTS, dailyApiMax: 15_000, apiUsage: 1_200 })
    tenantId = await connectTenant(db, 'salesforce', fake.connectConfig())
    beforeWorker = fake.requests.length
    proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(database.url).port) })
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'gtm-operations-'))
    sdkPort = await freePort()
    // The worker reaches Postgres through the proxy, so the test can take the database away.
    workerDone = runCli(
      ['worker', '--metrics-port', '0', '--temporal-metrics-port', String(sdkPort)],
      agentEnv(proxy.through(database.url)),
      {
        onStart: (child) => {
          worker = child
          child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
          child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
        },
      },
    )
    base = await waitFor(() => /Serving metrics at (http:\/\/\S+)\/metrics/.exec(stdout)?.[1], {
      what: 'the metrics address on stdout',
    })
    // The worker's first reconcile gives the new connection its schedule and a full sync.
    await waitFor(
      async () => {
        const runs = await owner.pool.query<{ n: number }>(
          "select count(*)::int as n from sync_runs where status = 'succeeded'",
        )
        return runs.rows[0]!.n >= Object.keys(STREAMS).length
      },
      { what: `the first sync of every stream:\n${stderr.slice(-2000)}`, timeoutMs: 60_000 },
    )
  }, 120_000)

  afterAll(async () => {
    worker?.kill('SIGTERM')
    const result = await workerDone
    if (result && result.code !== 0) console.error(result.stderr.slice(-3000))
    await proxy?.close()
    await fake?.close()
    await db?.close()
    await owner?.close()
    await env?.close()
    await database?.drop()
    if (dataDir) await rm(dataDir, { recursive: true, force: true })
  })

  const scrape = async (url = `${base}/metrics`): Promise<string> => {
    const res = await fetch(url)
    expect(res.status).toBe(200)
    return res.text()
  }
  /** The value of one sample, by its exact labels (as the text format orders them). */
  const sample = (
    body: string,
    name: string,
    labels: Record<string, string>,
  ): number | undefined => {
    const wanted = Object.entries(labels)
      .map(([k, v]) => `${k}="${v}"`)
      .sort()
    for (const line of body.split('\n')) {
      const match = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line)
      if (!match || match[1] !== name) continue
      const have = match[2]!.split(',').sort()
      if (have.length === wanted.length && have.every((l, i) => l === wanted[i])) {
        return Number(match[3])
      }
    }
    return undefined
  }

  it('counts the sync it ran, per stream, with no secret or record value in the body', async () => {
    const body = await scrape()
    const labels = { tenant: tenantId, connector: 'salesforce' }
    for (const [stream, object] of Object.entries(STREAMS)) {
      expect(
        sample(body, 'gtm_sync_runs_total', { ...labels, stream, outcome: 'succeeded' }),
        stream,
      ).toBe(1)
      expect(
        sample(body, 'gtm_sync_records_total', { ...labels, stream, change: 'created' }),
        stream,
      ).toBe(COUNTS[object])
    }
    expect(
      sample(body, 'gtm_sync_runs_total', { ...labels, stream: 'accounts', outcome: 'failed' }),
    ).toBeUndefined()
    expect(
      sample(body, 'gtm_sync_run_duration_seconds_count', {
        connector: 'salesforce',
        stream: 'contacts',
        outcome: 'succeeded',
      }),
    ).toBe(1)
    // Every call the worker made to Salesforce (REST, Bulk, token), counted under the connection.
    const calls = fake.requests.length - beforeWorker
    expect(calls).toBeGreaterThan(6)
    const ok = sample(body, 'gtm_vendor_requests_total', { ...labels, outcome: 'ok' }) ?? 0
    const failed = sample(body, 'gtm_vendor_requests_total', { ...labels, outcome: 'error' }) ?? 0
    expect(ok + failed).toBe(calls)
    expect(sample(body, 'gtm_vendor_api_quota_used', labels)).toBe(fake.apiUsage().used)
    expect(sample(body, 'gtm_vendor_api_quota_limit', labels)).toBe(15_000)
    // Read from the database at scrape time: just synced, on the default 15-minute schedule.
    expect(sample(body, 'gtm_connection_lag_seconds', labels)).toBeLessThan(120)
    expect(sample(body, 'gtm_connection_schedule_interval_seconds', labels)).toBe(900)
    expect(sample(body, 'gtm_connection_needs_reauth', labels)).toBe(0)
    expect(sample(body, 'gtm_connection_status', { ...labels, status: 'connected' })).toBe(1)
    expect(sample(body, 'gtm_writeback_queue_items', { ...labels, state: 'pending' })).toBe(0)
    expect(body).toMatch(/^gtm_database_up 1$/m)
    expect(body).toMatch(/^gtm_worker_running 1$/m)
    expect(body).toMatch(/^gtm_process_resident_memory_bytes \d+/m)

    const secrets = [TEST_KEY_HEX, fake.refreshToken, fake.clientId, ...fake.issuedTokens()]
    for (const secret of secrets) expect(body).not.toContain(secret)
    for (const object of Object.values(STREAMS)) {
      for (let i = 0; i < COUNTS[object]; i++) {
        const id = fake.idOf(object, i)
        expect(body).not.toContain(id)
        const record = fake.record(object, id)!
        for (const field of ['Name', 'Email', 'Subject', 'Website', 'Phone']) {
          const value = record[field]
          if (typeof value === 'string' && value.length > 3) expect(body).not.toContain(value)
        }
      }
    }
  })

  it("serves the Temporal SDK's own worker metrics on the documented port", async () => {
    const body = await scrape(`http://127.0.0.1:${sdkPort}/metrics`)
    expect(body).toMatch(/^temporal_\w+/m)
    expect(body).toContain(env.taskQueue)
  })

  it('is healthy while the process is up, and unready while Postgres is away', async () => {
    const health = await fetch(`${base}/healthz`)
    expect(health.status).toBe(200)
    expect(await health.json()).toMatchObject({ status: 'up' })

    const ready = await fetch(`${base}/readyz`)
    expect(await ready.json()).toEqual({
      status: 'ready',
      failed: [],
      checks: {
        database: { ok: true },
        migrations: { ok: true },
        temporal: { ok: true },
        worker: { ok: true },
      },
    })
    expect(ready.status).toBe(200)

    await proxy.cut()
    try {
      const down = await fetch(`${base}/readyz`)
      expect(down.status).toBe(503)
      const report = (await down.json()) as {
        status: string
        failed: string[]
        checks: Record<string, { ok: boolean; error?: string }>
      }
      expect(report.status).toBe('unready')
      expect(report.failed).toEqual(['database', 'migrations'])
      expect(report.checks.database?.error).toMatch(/refused the connection/)
      // Still up: a watchdog must not restart a worker for a database outage.
      expect((await fetch(`${base}/healthz`)).status).toBe(200)
      const metrics = await scrape()
      expect(metrics).toMatch(/^gtm_database_up 0$/m)
    } finally {
      await proxy.restore()
    }
    const back = await waitFor(
      async () => {
        const res = await fetch(`${base}/readyz`)
        return res.status === 200 ? res : undefined
      },
      { what: '/readyz ready again' },
    )
    expect(await back.json()).toMatchObject({ status: 'ready', failed: [] })
  })

  it('answers only GET and HEAD on its three paths', async () => {
    expect((await fetch(`${base}/nothing`)).status).toBe(404)
    const post = await fetch(`${base}/metrics`, { method: 'POST', body: 'x' })
    expect(post.status).toBe(405)
    expect(post.headers.get('allow')).toBe('GET, HEAD')
  })
})
