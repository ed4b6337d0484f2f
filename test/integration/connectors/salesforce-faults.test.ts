import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { asc, inArray } from 'drizzle-orm'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { DbHandle } from '../../../db/client.js'
import { accounts, activities, people, syncRuns } from '../../../db/schema/index.js'
import { withTenant } from '../../../db/tenant.js'
import {
  FAULT_KINDS,
  startFaultProxy,
  type FaultKind,
  type FaultProxy,
} from '../../fakes/fault-proxy.js'
import { refreshTokens } from '../../../src-agent/connectors/salesforce/auth.js'
import { salesforceConnector } from '../../../src-agent/connectors/salesforce/index.js'
import { salesforceWriteback } from '../../../src-agent/connectors/salesforce/writeback.js'
import type { RetryEvent } from '../../../src-agent/connectors/retry.js'
import { vendorRequestsTotal, vendorRetriesTotal } from '../../../src-agent/telemetry/metrics.js'
import { startSalesforceFake, type SalesforceFake } from '../../fakes/salesforce.js'
import { TEST_KEY_HEX } from '../../helpers/agent.js'
import { runCli, type CliResult } from '../../helpers/cli.js'
import { agentDb, databaseUrl } from '../../helpers/db.js'

/**
 * The real `gtm-agent` against a Salesforce whose network misbehaves: a fault proxy breaks 10% of
 * the data requests (chosen from a seed) with cut bodies, resets, maintenance pages, server
 * errors, expired sessions and stalls longer than the idle timeout. Every command must still end,
 * in one invocation, with exactly what a clean run gives. A call that hangs fails the test at its
 * timeout instead of hanging the suite.
 */

/** Large enough for several pages per object; Contacts are read with Bulk API 2.0. */
const COUNTS = {
  Account: 1_000,
  Contact: 5_000,
  Lead: 500,
  Opportunity: 700,
  Task: 900,
  Event: 500,
}
const TOTAL = Object.values(COUNTS).reduce((sum, n) => sum + n, 0)
const BULK_MIN_RECORDS = 1_000
const PAGE_SIZE = 100
/** Short deadlines, so a stall costs half a second, not a minute. */
const TIMEOUTS = { connectTimeoutMs: 2_000, idleTimeoutMs: 2_000, requestTimeoutMs: 20_000 }
const SEED = 20_250_101
/** The reason the agent logs for each kind of fault. */
const REASON: Record<FaultKind, string> = {
  cut_body: 'cut_body',
  reset: 'connection_reset',
  maintenance: 'http_503',
  server_error: 'http_500',
  expired_session: 'session_expired',
  stall_headers: 'idle_timeout',
  stall_body: 'idle_timeout',
}
const STALL_MS = 5_000

/** How many of the faults each retry reason stands for. */
function countReasons(faults: ReadonlyArray<{ kind: FaultKind }>): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const f of faults) counts[REASON[f.kind]] = (counts[REASON[f.kind]] ?? 0) + 1
  return counts
}

describe('gtm-agent salesforce through a faulty network', () => {
  let fake: SalesforceFake
  let dir: string
  let db: DbHandle
  const children = new Set<ChildProcess>()
  const proxies: FaultProxy[] = []
  const env = () => ({
    DATABASE_URL: databaseUrl(),
    CONNECTOR_ENCRYPTION_KEY: TEST_KEY_HEX,
    LOG_LEVEL: 'info',
  })

  /** The CLI, killed if the test ends (or times out) before it does. */
  const cli = (args: string[]): Promise<CliResult> =>
    runCli(args, env(), {
      onStart: (child) => {
        children.add(child)
        child.on('exit', () => children.delete(child))
      },
    })

  beforeAll(async () => {
    fake = await startSalesforceFake({ counts: COUNTS })
    dir = await mkdtemp(path.join(os.tmpdir(), 'gtm-sf-faults-'))
    db = agentDb()
  })
  afterEach(() => {
    for (const child of children) child.kill('SIGKILL')
  })
  afterAll(async () => {
    for (const proxy of proxies) await proxy.close()
    await fake?.close()
    await db?.close()
    await rm(dir, { recursive: true, force: true })
  })

  /** A tenant connected through the real CLI, to the fake directly or through a proxy. */
  async function connectTenant(
    prefix: string,
    via?: FaultProxy,
  ): Promise<{ tenant: string; connected: CliResult }> {
    const tenant = `${prefix}-${randomBytes(4).toString('hex')}`
    const created = await cli(['tenants', 'create', tenant, '--name', tenant])
    expect(created.code, created.stderr).toBe(0)
    const configFile = path.join(dir, `${tenant}.json`)
    await writeFile(
      configFile,
      JSON.stringify({
        ...fake.connectConfig(),
        ...(via ? { instanceUrl: via.url, loginUrl: via.url } : {}),
        bulkMinRecords: BULK_MIN_RECORDS,
        bulkPollIntervalMs: 5,
        ...TIMEOUTS,
      }),
    )
    const connected = await cli([
      'connect',
      'salesforce',
      '--tenant',
      tenant,
      '--config',
      configFile,
    ])
    return { tenant, connected }
  }

  async function sync(tenant: string, full: boolean) {
    const args = ['sync', 'salesforce', '--tenant', tenant, '--page-size', String(PAGE_SIZE)]
    const result = await cli([...args, ...(full ? ['--full'] : []), '--json'])
    expect(result.code, result.stderr).toBe(0)
    noSecrets(result)
    return {
      summary: JSON.parse(result.stdout) as Record<string, unknown>,
      retries: retries(result),
    }
  }

  /** Every row a tenant holds, without what differs between two tenants by design. */
  async function rows(tenant: string) {
    return withTenant(db.db, tenant, async (tx) => {
      const strip = <
        T extends {
          id: string
          tenantId: string
          createdAt: Date
          updatedAt: Date
          deletedAt: Date | null
        },
      >(
        list: T[],
      ) =>
        list.map(({ id: _id, tenantId: _t, createdAt: _c, updatedAt: _u, deletedAt, ...row }) => ({
          ...row,
          deleted: deletedAt !== null,
        }))
      return {
        people: strip(await tx.select().from(people).orderBy(asc(people.externalId))),
        accounts: strip(await tx.select().from(accounts).orderBy(asc(accounts.externalId))),
        activities: strip(await tx.select().from(activities).orderBy(asc(activities.externalId))),
      }
    })
  }

  function noSecrets(result: CliResult): void {
    const out = result.stdout + result.stderr
    for (const token of fake.issuedTokens()) expect(out).not.toContain(token)
    expect(out).not.toMatch(/authorization|bearer /i)
  }

  /** The retry log lines of one CLI run. */
  function retries(result: CliResult): Array<{ reason: string; attempt: number; delayMs: number }> {
    return result.stderr
      .split('\n')
      .filter((line) => line.includes('"msg":"vendor call failed; retrying"'))
      .map((line) => JSON.parse(line) as { reason: string; attempt: number; delayMs: number })
  }

  it(
    'syncs in full, then incrementally, through 10% faults, ending with the rows of a clean run',
    { timeout: 180_000 },
    async () => {
      const proxy = await startFaultProxy(fake.url, { seed: SEED, share: 0.1, stallMs: STALL_MS })
      proxies.push(proxy)
      const { tenant: clean, connected: cleanConnect } = await connectTenant('sf-clean')
      expect(cleanConnect.code, cleanConnect.stderr).toBe(0)
      // Connecting under faults has its own tests below; here the syncs alone meet them.
      proxy.setEnabled(false)
      const { tenant: faulty, connected: faultyConnect } = await connectTenant('sf-faulty', proxy)
      proxy.setEnabled(true)
      expect(faultyConnect.code, faultyConnect.stderr).toBe(0)

      /** One sync of each tenant; the faulty one must match the clean one and explain each fault. */
      async function syncBoth(full: boolean) {
        const expected = await sync(clean, full)
        const faultsBefore = proxy.injected.length
        const refreshesBefore = fake.refreshCount()
        const result = await sync(faulty, full)
        const faults = proxy.injected.slice(faultsBefore)
        // The guarantee: exactly the rows of a clean run. `updated` is left out of the counts
        // compared: how many unchanged records a pass re-reads (and rewrites, when the REST
        // payload of a record first read through Bulk differs) is not fixed between two runs.
        expect(await rows(faulty)).toEqual(await rows(clean))
        expect(pick(result.summary)).toEqual(pick(expected.summary))
        // One logged retry per fault, saying why; one refresh per expired session.
        expect(result.retries.map((r) => r.reason).sort()).toEqual(
          faults.map((f) => REASON[f.kind]).sort(),
        )
        expect(fake.refreshCount() - refreshesBefore).toBe(
          faults.filter((f) => f.kind === 'expired_session').length,
        )
        // The runs' records (one per stream) say how many retries there were, and why.
        const runIds = (result.summary.streams as Array<{ runId: string }>).map((s) => s.runId)
        const runs = await withTenant(db.db, faulty, (tx) =>
          tx
            .select({ retries: syncRuns.retries, retryReasons: syncRuns.retryReasons })
            .from(syncRuns)
            .where(inArray(syncRuns.id, runIds)),
        )
        expect(runs).toHaveLength(6)
        const recorded: Record<string, number> = {}
        for (const run of runs) {
          for (const [reason, n] of Object.entries(run.retryReasons)) {
            recorded[reason] = (recorded[reason] ?? 0) + n
          }
        }
        const byReason = countReasons(faults)
        expect(runs.reduce((sum, r) => sum + r.retries, 0)).toBe(faults.length)
        expect(recorded).toEqual(byReason)
        return { summary: result.summary, faults }
      }

      const full = await syncBoth(true)
      expect(full.summary).toMatchObject({ status: 'succeeded', created: TOTAL, errors: 0 })
      // Faults met both read paths: REST queries and Bulk API 2.0 jobs.
      expect(full.faults.some((f) => f.path.includes('/jobs/query'))).toBe(true)
      expect(full.faults.some((f) => /\/query(All)?(\/|$)/.test(f.path))).toBe(true)

      // Changes on the source, read incrementally by both tenants.
      fake.insert('Contact', { FirstName: 'New', LastName: 'Person', Email: 'new@example.com' })
      fake.insert('Account', { Name: 'New Account', Website: 'https://new.example.com' })
      for (let i = 0; i < 300; i += 7)
        fake.update('Contact', fake.idOf('Contact', i), { Title: `Changed ${i}` })
      for (let i = 0; i < 40; i += 3)
        fake.update('Account', fake.idOf('Account', i), { Industry: 'Energy' })
      fake.remove('Lead', fake.idOf('Lead', 5))
      fake.remove('Opportunity', fake.idOf('Opportunity', 9))
      const incremental = await syncBoth(false)
      expect(incremental.summary).toMatchObject({ status: 'succeeded', created: 2, deleted: 2 })

      // Over the two runs, every kind of fault was met.
      expect(new Set([...full.faults, ...incremental.faults].map((f) => f.kind))).toEqual(
        new Set(FAULT_KINDS),
      )
    },
  )

  it('writes scores back through every kind of fault, each item once answered', async () => {
    const proxy = await startFaultProxy(fake.url, {
      seed: SEED,
      share: 0,
      every: 2,
      stallMs: STALL_MS,
    })
    proxies.push(proxy)
    // A valid access token to start with: every 401 then comes from the proxy.
    const { accessToken } = await refreshTokens({
      loginUrl: fake.url,
      clientId: fake.clientId,
      refreshToken: fake.refreshToken,
    })
    const credentials = salesforceConnector.configSchema.parse({
      ...fake.connectConfig(),
      accessToken,
      instanceUrl: proxy.url,
      loginUrl: proxy.url,
      ...TIMEOUTS,
    })
    const events: RetryEvent[] = []
    const options = {
      onCredentialsChanged: () => Promise.resolve(),
      onRetry: (event: RetryEvent) => events.push(event),
    }
    // Counted in the agent's metrics under the tenant and connector of the call.
    const labels = { tenant: 'faults-writeback', connector: 'salesforce' }
    // Three requests of at most 200 records per round, every other one broken.
    for (let round = 1; round <= 3; round++) {
      const items = Array.from({ length: 450 }, (_, i) => ({
        entityType: 'account' as const,
        externalId: fake.idOf('Account', i),
        fields: { GTM_Score__c: round * 1_000 + i },
      }))
      const results = await salesforceWriteback.send(credentials, items, { ...options, labels })
      expect(results).toHaveLength(items.length)
      expect(results.filter((r) => !r.ok)).toEqual([])
      expect(fake.record('Account', fake.idOf('Account', 449))).toMatchObject({
        GTM_Score__c: round * 1_000 + 449,
      })
    }
    expect(new Set(proxy.injected.map((f) => f.kind))).toEqual(new Set(FAULT_KINDS))
    expect(events.map((e) => e.reason)).toEqual(proxy.injected.map((f) => REASON[f.kind]))
    // gtm_vendor_retries_total: one per fault, by reason; gtm_vendor_requests_total: every
    // attempt, answered or failed.
    const byReason = countReasons(proxy.injected)
    const retried = (await vendorRetriesTotal.get()).values.filter(
      (v) => v.labels.tenant === labels.tenant && v.labels.connector === labels.connector,
    )
    expect(Object.fromEntries(retried.map((v) => [v.labels.reason, v.value]))).toEqual(byReason)
    const attempts = (await vendorRequestsTotal.get()).values.filter(
      (v) => v.labels.tenant === labels.tenant,
    )
    // Answered: the nine sends, and the token refresh after each expired session.
    expect(Object.fromEntries(attempts.map((v) => [v.labels.outcome, v.value]))).toEqual({
      ok: 9 + byReason.session_expired!,
      error: proxy.injected.length,
    })
  })

  it(
    'stops on the first SIGTERM within one request deadline when every data request stalls: no retry starts, the run is recorded cancelled',
    { timeout: 60_000 },
    async () => {
      // Every data request stalls far past the 2 s idle timeout: each attempt fails with
      // idle_timeout, which the retry policy would try again up to five times (over 10 s).
      const stalling = await startFaultProxy(fake.url, {
        seed: SEED,
        share: 0,
        every: 1,
        kinds: ['stall_headers'],
        stallMs: 60_000,
      })
      proxies.push(stalling)
      stalling.setEnabled(false)
      const { tenant, connected } = await connectTenant('sf-stop', stalling)
      expect(connected.code, connected.stderr).toBe(0)
      stalling.setEnabled(true)

      let signalledAt = 0
      let requestsAtSignal = 0
      const result = await runCli(
        ['sync', 'salesforce', '--tenant', tenant, '--full', '--json'],
        env(),
        {
          onStart: (child) => {
            children.add(child)
            const timer = setInterval(() => {
              // A data request is stalled in the proxy: signal once, and only once.
              if (stalling.injected.length === 0) return
              clearInterval(timer)
              signalledAt = Date.now()
              requestsAtSignal = stalling.dataRequests
              child.kill('SIGTERM')
            }, 20)
            child.on('exit', () => {
              clearInterval(timer)
              children.delete(child)
            })
          },
        },
      )
      const exitedAfterMs = Date.now() - signalledAt
      expect(signalledAt).toBeGreaterThan(0)
      // The request in flight ran into its idle deadline; nothing was sent after the signal.
      expect(stalling.dataRequests).toBe(requestsAtSignal)
      expect(retries(result)).toEqual([])
      // One idle deadline (2 s) and the time to record the stop; five attempts take over 10 s.
      expect(exitedAfterMs).toBeLessThan(TIMEOUTS.idleTimeoutMs + 6_000)
      expect(result.code).toBe(1)
      noSecrets(result)
      expect(result.stderr.trim().split('\n').at(-1)).toMatch(/^error: The sync was cancelled\. /)
      expect(JSON.parse(result.stdout)).toMatchObject({ status: 'failed', pages: 0 })
      const runs = await withTenant(db.db, tenant, (tx) =>
        tx.select({ status: syncRuns.status, error: syncRuns.error }).from(syncRuns),
      )
      expect(runs).toEqual([
        { status: 'failed', error: expect.stringMatching(/^The sync was cancelled\./) as string },
      ])
    },
  )

  it.each(FAULT_KINDS)(
    'connects and checks health when every other data request fails with %s',
    { timeout: 60_000 },
    async (kind: FaultKind) => {
      const every = await startFaultProxy(fake.url, {
        seed: SEED,
        share: 0,
        every: 2,
        kinds: [kind],
        stallMs: STALL_MS,
      })
      proxies.push(every)
      const { tenant, connected } = await connectTenant(`sf-${kind.replace('_', '-')}`, every)
      expect(connected.code, connected.stderr).toBe(0)
      noSecrets(connected)
      // Connecting starts without an access token: Salesforce's own 401 is one refresh more.
      const connectReasons = new Set(retries(connected).map((r) => r.reason))
      expect(connectReasons).toEqual(new Set([REASON[kind], 'session_expired']))
      const injected = every.injected.length
      const health = await cli(['health', 'salesforce', '--tenant', tenant, '--json'])
      expect(health.code, health.stderr).toBe(0)
      noSecrets(health)
      expect(JSON.parse(health.stdout)).toMatchObject({ status: 'healthy' })
      expect(every.injected.length).toBeGreaterThan(injected)
      expect(retries(health).map((r) => r.reason)).toEqual(
        every.injected.slice(injected).map((f) => REASON[f.kind]),
      )
    },
  )
})

function pick(summary: Record<string, unknown>) {
  const { created, deleted, errors, status } = summary
  return { created, deleted, errors, status }
}
