import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDb, type DbHandle } from '../../../db/client.js'
import type { StatusReport } from '../../../src-agent/cli/status.js'
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

  it('status --json matches the database, and exits 1 when a connection needs re-auth', async () => {
    const { rows: ids } = await owner.pool.query<{ id: string }>(
      'select id from connectors where tenant_id = $1',
      [tenantId],
    )
    const connectorId = ids[0]!.id
    // Two queued writebacks not due yet, one webhook event nobody processes here.
    await owner.pool.query(
      `insert into writeback_queue (tenant_id, connector_type, entity_type, external_id, fields, next_attempt_at)
       select $1, 'salesforce', 'account', 'acc-' || n, '{"tier":"hot"}', now() + interval '1 day'
         from generate_series(1, 2) n`,
      [tenantId],
    )
    await owner.pool.query(
      `insert into webhook_inbox (tenant_id, connector_id, source, event_id, event_type, payload, records)
       values ($1, $2, 'salesforce', 'evt-1', 'updated', '{}', '[]')`,
      [tenantId, connectorId],
    )
    const status = (args: string[]) => runCli(['status', ...args], agentEnv(database.url))

    const result = await status(['--json'])
    expect(result.code, result.stderr).toBe(0)
    const report = JSON.parse(result.stdout) as StatusReport
    const { rows: connections } = await owner.pool.query<{
      status: string
      last_sync_at: Date
    }>('select status, last_sync_at from connectors where tenant_id = $1', [tenantId])
    const { rows: runs } = await owner.pool.query<{
      stream: string
      status: string
      started_at: Date
      finished_at: Date
    }>(
      'select stream, status, started_at, finished_at from sync_runs where tenant_id = $1 order by started_at desc limit 1',
      [tenantId],
    )
    const { rows: version } = await owner.pool.query<{ n: number }>(
      'select gtm_schema_version() as n',
    )
    expect(report).toMatchObject({
      healthy: true,
      attention: [],
      database: {
        reachable: true,
        migrations: { applied: version[0]!.n, shipped: version[0]!.n },
        error: null,
      },
      temporal: { reachable: true, address: env.address, taskQueue: env.taskQueue, workers: 1 },
    })
    expect(report.version).toMatch(/^\d+\.\d+\.\d+/)
    expect(report.connections).toEqual([
      {
        tenantId,
        connectorType: 'salesforce',
        status: connections[0]!.status,
        needsReauth: false,
        lastSyncAt: connections[0]!.last_sync_at.toISOString(),
        lagSeconds: expect.any(Number) as number,
        lastRun: {
          stream: runs[0]!.stream,
          status: runs[0]!.status,
          startedAt: runs[0]!.started_at.toISOString(),
          finishedAt: runs[0]!.finished_at.toISOString(),
          errorCode: null,
          error: null,
        },
        schedule: {
          cron: '*/15 * * * *',
          paused: false,
          intervalSeconds: 900,
          nextRunAt: expect.stringMatching(/^\d{4}-/) as string,
        },
        scheduleState: 'scheduled',
        writebacks: { pending: 2, failed: 0 },
        webhooks: { pending: 1, failed: 0 },
        attention: [],
      },
    ])
    const lagNow = (Date.now() - connections[0]!.last_sync_at.getTime()) / 1000
    expect(Math.abs(report.connections[0]!.lagSeconds! - lagNow)).toBeLessThan(30)

    await owner.pool.query(
      `update connectors set status = 'error', last_sync_error = 'needs re-auth: Salesforce refused the refresh token'
        where id = $1`,
      [connectorId],
    )
    const failing = await status(['--json'])
    expect(failing.code).toBe(1)
    const failed = JSON.parse(failing.stdout) as StatusReport
    expect(failed.healthy).toBe(false)
    expect(failed.attention).toEqual([
      `${tenantId}/salesforce: needs re-auth: the source refused the stored credentials; reconnect it.`,
    ])
    const text = await status([])
    expect(text.code).toBe(1)
    expect(text.stdout).toMatch(new RegExp(`${tenantId}\\s+salesforce\\s+needs re-auth`))
    expect(text.stdout).toContain('Needs attention (1):')
    expect(text.stdout + text.stderr).not.toContain(fake.refreshToken)

    // A reconcile interval the worker would refuse is named, with the value given.
    const misconfigured = await runCli(['status', '--json'], {
      ...agentEnv(database.url),
      GTM_SCHEDULE_RECONCILE_SECONDS: 'soon',
    })
    expect(misconfigured.code).toBe(1)
    expect((JSON.parse(misconfigured.stdout) as StatusReport).attention[0]).toBe(
      'GTM_SCHEDULE_RECONCILE_SECONDS must be a whole number of seconds from 1 to 86400, not "soon". The worker refuses to start with it.',
    )
  }, 60_000)
})
