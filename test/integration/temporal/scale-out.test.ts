/**
 * Scale-out: three `gtm-agent worker` processes against one Temporal and one Postgres, thirty
 * tenants each with a Salesforce connection of its own, every schedule triggered, one worker
 * killed (SIGKILL) while it is in the middle of syncs. Every tenant ends with exactly its own
 * rows, no connection is ever synced by two workers at once (from the workers' own logs: a
 * chunk's lines are written while it holds the connection's sync lock), and the killed worker's
 * syncs are finished by the others from their last committed page (from the fakes' request logs).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { and, eq, gt, inArray, sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDb, type DbHandle } from '../../../db/client.js'
import { accounts, activities, people, streamState, syncRuns } from '../../../db/schema/index.js'
import '../../../src-agent/connectors/salesforce/index.js'
import { SYNC_LOCK_KEY, syncLockName } from '../../../src-agent/pipeline/sync-lock.js'
import {
  awaitSync,
  ensureSchedule,
  triggerSchedule,
  type StartedSync,
  type SyncOutcomeView,
} from '../../../src-agent/temporal/scheduler.js'
import type { SyncTuning } from '../../../src-agent/temporal/workflows.js'
import {
  startSalesforceFake,
  type SalesforceFake,
  type SObjectType,
} from '../../fakes/salesforce.js'
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

const TENANTS = 30
const WORKERS = 3
/** Small pages from a slow org, so a sync spans many committed pages and a kill lands inside one. */
const TUNING: SyncTuning = {
  pageSize: 10,
  pagesPerChunk: 3,
  heartbeatTimeoutMs: 4_000,
  initialRetryMs: 200,
}
const QUERY_DELAY_MS = 120
/** Longest a connection may wait between two chunks, a worker's death included (a few heartbeat timeouts). */
const MAX_IDLE_MS = 45_000
/** The pools `gtm-agent worker` opens: activities (4 × 3 + 2) and the agent's own handle (5). */
const PG_CONNECTIONS_PER_WORKER = 19

const OBJECTS: Array<{ type: SObjectType; stream: string }> = [
  { type: 'Account', stream: 'accounts' },
  { type: 'Contact', stream: 'contacts' },
  { type: 'Lead', stream: 'leads' },
  { type: 'Opportunity', stream: 'opportunities' },
  { type: 'Task', stream: 'tasks' },
  { type: 'Event', stream: 'events' },
]

interface Tenant {
  id: string
  tag: string
  fake: SalesforceFake
  counts: Record<SObjectType, number>
  /** Where a sync was started, to wait for it. */
  outcome?: Promise<SyncOutcomeView>
}

type Worker = WorkerProcess

interface ChunkLine {
  msg: 'sync chunk started' | 'sync chunk ended'
  time: number
  tenantId: string
  runId: string
  attempt: number
  pages?: number
  outcome?: string
}

describe('scale-out: several workers on one Temporal and one Postgres', () => {
  let database: { url: string; drop(): Promise<void> }
  let owner: DbHandle
  let env: TemporalTestEnv
  let dataDir: string
  const tenants: Tenant[] = []
  const workers: Worker[] = []

  beforeAll(async () => {
    database = await createIsolatedDatabase()
    owner = createDb(database.url, { asOwner: true })
    env = await startTemporalTestEnv('scaleout', { databaseUrl: database.url })
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'gtm-scaleout-'))
  }, 60_000)
  afterAll(async () => {
    await killWorkers(workers)
    await Promise.all(tenants.map((t) => t.fake.close()))
    await env?.close()
    await owner?.close()
    await database?.drop()
    if (dataDir) await rm(dataDir, { recursive: true, force: true })
  }, 60_000)

  it('finishes every tenant exactly, one worker per connection at a time, after a worker is killed mid-sync', async () => {
    const began = Date.now()
    // Three workers, started first: their start-up pass finds no connection yet, so every sync
    // below is one this test triggered.
    for (let n = 0; n < WORKERS; n++) workers.push(startWorker(`scaleout-worker-${n}`))
    await Promise.all(
      workers.map((w) =>
        waitFor(
          () => {
            if (w.child.exitCode !== null) {
              throw new Error(`${w.name} exited before it started:\n${w.output().slice(-3000)}`)
            }
            return logLines(w).some((l) => l.msg === 'worker started')
          },
          { timeoutMs: 90_000, intervalMs: 200, what: `${w.name} to start` },
        ),
      ),
    )

    // Thirty tenants, each with a Salesforce org of its own (sizes differ, every name carries the
    // tenant's tag), a connection and a schedule.
    for (let k = 0; k < TENANTS; k++) {
      const tag = `t${String(k).padStart(2, '0')}`
      const counts: Record<SObjectType, number> = {
        Account: 25 + (k % 4) * 4,
        Contact: 22 + (k % 3) * 5,
        Lead: 4 + (k % 2),
        Opportunity: 3,
        Task: 6 + (k % 3),
        Event: 3,
      }
      const fake = await startSalesforceFake({
        counts,
        queryDelayMs: QUERY_DELAY_MS,
        overrides: taggedFields(tag, counts),
      })
      const id = await connectTenant(env.activityDb, 'salesforce', fake.connectConfig())
      tenants.push({ id, tag, fake, counts })
    }
    const deps = env.schedulerDeps('test:runner')
    const connectedAt = Date.now()
    for (const t of tenants) {
      // A cron that does not come round during the test: the syncs are the triggered ones.
      await ensureSchedule(deps, { tenantId: t.id, connectorType: 'salesforce', cron: '0 0 1 1 *' })
    }
    for (const t of tenants) {
      // Each schedule triggered three times at once (three admins, or three agents): one sync.
      // Its steps wait on the connection's sync lock, held here until all three triggers are
      // answered: on a slow machine the sync could otherwise end before the last trigger came,
      // which would then rightly start a second one.
      const lock = await owner.pool.connect()
      let triggers: StartedSync[]
      try {
        await lock.query(`select pg_advisory_lock(${SYNC_LOCK_KEY})`, [
          syncLockName(t.id, 'salesforce'),
        ])
        triggers = await Promise.all(
          Array.from({ length: 3 }, () =>
            triggerSchedule(deps, { tenantId: t.id, connectorType: 'salesforce', tuning: TUNING }),
          ),
        )
      } finally {
        await lock.query('select pg_advisory_unlock_all()')
        lock.release()
      }
      expect(triggers.map((s) => s.outcome).sort()).toEqual([
        'already_running',
        'already_running',
        'started',
      ])
      const started = triggers.find((s) => s.outcome === 'started')!
      t.outcome = awaitSync(started.handle)
      t.outcome.catch(() => undefined)
    }

    // Postgres connections each worker holds, sampled while the syncs run.
    const peak = new Map<string, number>()
    const sample = async (): Promise<void> => {
      const rows = await owner.db.execute<{ app: string; n: number }>(sql`
        select application_name as app, count(*)::int as n from pg_stat_activity
        where datname = current_database() and application_name like 'scaleout-worker-%'
        group by application_name`)
      for (const r of rows.rows) peak.set(r.app, Math.max(peak.get(r.app) ?? 0, r.n))
    }

    // The victim: a worker in the middle of a chunk whose run has committed a page and has pages
    // still to come. Every org holds its answers while the workers are looked at and the victim
    // is killed, so that nothing moves meanwhile: a chunk could otherwise end between the look
    // and the kill, and the kill would catch nothing.
    const holdAll = (on: boolean): void => {
      for (const t of tenants) t.fake.holdQueries(on)
    }
    const looks: string[] = []
    const victim = await waitFor(
      async () => {
        await sample()
        holdAll(true)
        // The syncs under way stop at their next query, and their workers' log lines are read.
        await new Promise((resolve) => setTimeout(resolve, 500))
        let open = 0
        let inRuns = 0
        for (const w of workers) {
          const chunks = [...openChunks(chunkLines(w)).keys()]
          open += chunks.length
          if (chunks.length === 0) continue
          const runs = await owner.db
            .select({ id: syncRuns.id, tenantId: syncRuns.tenantId })
            .from(syncRuns)
            .where(
              and(
                inArray(syncRuns.id, chunks),
                gt(syncRuns.pages, 0),
                eq(syncRuns.status, 'running'),
                // Pages of its stream are still to come.
                sql`not exists (select 1 from ${streamState} where ${streamState.lastRunId} = ${syncRuns.id})`,
              ),
            )
          inRuns += runs.length
          // The chunk waits on its org: it stands still in the middle of its run.
          const waiting = (run: { tenantId: string }) =>
            tenants.find((t) => t.id === run.tenantId)!.fake.heldQueries > 0
          if (runs.some(waiting)) return w
        }
        holdAll(false)
        looks.push(`${open} chunks open, ${inRuns} past a committed page, none waiting on its org`)
        return undefined
      },
      { timeoutMs: 60_000, intervalMs: 200, what: 'a worker in the middle of a sync' },
    ).catch((err: Error) => {
      holdAll(false)
      throw new Error(`${err.message}; looked ${looks.length} times: ${looks.slice(-5).join('; ')}`)
    })
    victim.child.kill('SIGKILL')
    expect(await victim.exited).toBe('SIGKILL')
    const killedAt = Date.now()
    // Postgres may still be acting on what the victim sent just before it died (a page's COMMIT):
    // where its streams stand, and what it asked the orgs, is read once its sessions are gone.
    await waitFor(
      async () => {
        const rows = await owner.db.execute<{ n: number }>(
          sql`select count(*)::int as n from pg_stat_activity where application_name = ${victim.name}`,
        )
        return rows.rows[0]!.n === 0
      },
      { timeoutMs: 30_000, intervalMs: 20, what: `the sessions of ${victim.name} to end` },
    )
    holdAll(false)
    const requestsBefore = new Map(tenants.map((t) => [t.id, t.fake.requests.length]))

    // What the kill interrupted: chunks the victim started and never ended, of runs with pages
    // committed, and where each of those streams stood.
    const interrupted = openChunks(chunkLines(victim))
    const heldRuns =
      interrupted.size === 0
        ? []
        : await owner.db
            .select()
            .from(syncRuns)
            .where(inArray(syncRuns.id, [...interrupted.keys()]))
    const held = heldRuns.filter((r) => r.pages > 0 && r.status === 'running')
    expect(held.length, 'runs the kill caught with committed pages').toBeGreaterThan(0)
    const committedAtKill = new Map<string, { cursor: string | null; finished: boolean }>()
    for (const run of held) {
      const [state] = await owner.db
        .select({ cursor: streamState.cursor, lastRunId: streamState.lastRunId })
        .from(streamState)
        .where(
          and(eq(streamState.connectorId, run.connectorId), eq(streamState.stream, run.stream!)),
        )
      committedAtKill.set(run.id, {
        cursor: state?.cursor ?? null,
        // Its last page committed, the chunk not yet reported back: nothing is left to read.
        finished: state?.lastRunId === run.id,
      })
    }
    expect(
      [...committedAtKill.values()].filter((c) => !c.finished).length,
      'streams the kill caught between two committed pages',
    ).toBeGreaterThan(0)

    // Every sync finishes, the killed worker's included.
    const sampler = setInterval(() => void sample().catch(() => undefined), 250)
    let outcomes: SyncOutcomeView[]
    try {
      outcomes = await Promise.all(tenants.map((t) => t.outcome!))
    } finally {
      clearInterval(sampler)
    }
    const syncedAt = Date.now()
    for (const [k, outcome] of outcomes.entries()) {
      expect(outcome, `tenant ${tenants[k]!.tag}`).toMatchObject({
        status: 'succeeded',
        updated: 0,
      })
    }

    // (a) Every tenant has exactly its own org's rows, and nobody else's.
    for (const [table, expected] of [
      ['accounts', expectedAccounts],
      ['people', expectedPeople],
      ['activities', expectedActivities],
    ] as const) {
      const rows = await storedRows(owner, table)
      for (const t of tenants) {
        expect(rows.get(t.id) ?? [], `${table} of tenant ${t.tag}`).toEqual(expected(t).sort())
      }
      expect([...rows.keys()].sort(), `tenants holding ${table}`).toEqual(
        tenants.map((t) => t.id).sort(),
      )
    }
    // One succeeded run per stream and tenant, each created exactly its object's records, none
    // updated. A run opened by a worker that died before reporting it back is closed as
    // interrupted by the next one, with nothing written under it.
    const runs = await owner.db.select().from(syncRuns)
    for (const t of tenants) {
      const mine = runs.filter((r) => r.tenantId === t.id)
      for (const { type, stream } of OBJECTS) {
        const succeeded = mine.filter((r) => r.stream === stream && r.status === 'succeeded')
        expect(succeeded, `${t.tag} ${stream}`).toEqual([
          expect.objectContaining({ created: t.counts[type], updated: 0, errors: 0 }),
        ])
      }
      for (const other of mine.filter((r) => r.status !== 'succeeded')) {
        expect(other, `${t.tag}: a run that did not succeed`).toMatchObject({
          errorCode: 'sync_incomplete',
          pages: 0,
          created: 0,
        })
      }
    }

    // (b) No connection was ever synced by two workers at once: per connection, the chunks of
    // all workers (the victim's interrupted ones until it died) never overlap in time.
    const intervals: Array<{
      worker: string
      tenantId: string
      runId: string
      from: number
      to: number
    }> = []
    for (const w of workers) {
      const started = new Map<string, ChunkLine>()
      for (const line of chunkLines(w)) {
        if (line.msg === 'sync chunk started') {
          expect(started.has(line.runId), `${w.name} started a chunk of ${line.runId} twice`).toBe(
            false,
          )
          started.set(line.runId, line)
          continue
        }
        const from = started.get(line.runId)
        expect(from, `${w.name} ended a chunk of ${line.runId} it never started`).toBeDefined()
        started.delete(line.runId)
        intervals.push({
          worker: w.name,
          tenantId: line.tenantId,
          runId: line.runId,
          from: from!.time,
          to: line.time,
        })
      }
      for (const open of started.values()) {
        expect(w, `${w.name} left a chunk open without being killed`).toBe(victim)
        intervals.push({
          worker: w.name,
          tenantId: open.tenantId,
          runId: open.runId,
          from: open.time,
          to: killedAt,
        })
      }
    }
    let handedOver = 0
    for (const t of tenants) {
      const mine = intervals.filter((i) => i.tenantId === t.id).sort((a, b) => a.from - b.from)
      expect(mine.length, `chunks of ${t.tag}`).toBeGreaterThan(0)
      for (let i = 1; i < mine.length; i++) {
        const [before, after] = [mine[i - 1]!, mine[i]!]
        expect(
          after.from,
          `${t.tag}: ${after.worker} started a chunk while ${before.worker}'s was running`,
        ).toBeGreaterThanOrEqual(before.to)
        // Nor does a connection stand still: whatever step the killed worker held is taken over
        // within seconds (heartbeat timeouts), not after a step's whole start-to-close timeout.
        expect(
          after.from - before.to,
          `${t.tag}: time without a chunk before ${after.worker}'s`,
        ).toBeLessThan(MAX_IDLE_MS)
        if (after.worker !== before.worker) handedOver += 1
      }
    }
    // The connections really were spread over the workers, and moved between them.
    for (const w of workers) {
      expect(
        intervals.filter((i) => i.worker === w.name).length,
        `chunks run by ${w.name}`,
      ).toBeGreaterThan(0)
    }
    expect(handedOver).toBeGreaterThan(0)

    // (c) The killed worker's syncs were finished by the others, from the last committed page.
    for (const run of held) {
      const t = tenants.find((x) => x.id === run.tenantId)!
      const finishers = intervals.filter((i) => i.runId === run.id && i.from > killedAt)
      expect(finishers.length, `chunks of ${t.tag} ${run.stream} after the kill`).toBeGreaterThan(0)
      expect(finishers.every((i) => i.worker !== victim.name)).toBe(true)
      const resumed = chunkLines(workers.find((w) => w.name === finishers[0]!.worker)!).find(
        (l) => l.runId === run.id && l.msg === 'sync chunk started' && l.time > killedAt,
      )
      expect(resumed?.attempt, 'the interrupted chunk, retried').toBeGreaterThan(1)

      const object = OBJECTS.find((o) => o.stream === run.stream)!.type
      const pages = pageQueries(t.fake, object)
      // Read from scratch once only: the retry did not start the stream again.
      expect(
        pages.filter((q) => !q.includes(' WHERE ')),
        `${t.tag} ${object} from scratch`,
      ).toHaveLength(1)
      // The first page asked after the kill is the one after the last committed cursor.
      const after = pageQueries(t.fake, object, requestsBefore.get(t.id))
      const atKill = committedAtKill.get(run.id)!
      const cursor = JSON.parse(atKill.cursor ?? 'null') as { position?: { id: string } } | null
      expect(cursor?.position?.id, `${t.tag} ${object}: a committed position`).toBeTruthy()
      if (atKill.finished) {
        // Every page was committed before the kill: the retried chunk read nothing more.
        expect(after, `${t.tag} ${object}: pages asked after the kill`).toEqual([])
      } else {
        expect(after[0], `${t.tag} ${object}: the first page after the kill`).toContain(
          `Id > '${cursor!.position!.id}'`,
        )
      }
      // Only pages in flight when the worker died (the one being written and the prefetched one)
      // are read twice.
      expect(pages.length - new Set(pages).size).toBeLessThanOrEqual(2)
    }

    // Postgres connections stay within the pools a worker opens.
    expect(peak.size).toBe(WORKERS)
    for (const [app, n] of peak) {
      expect(n, `Postgres connections of ${app}`).toBeLessThanOrEqual(PG_CONNECTIONS_PER_WORKER)
    }
    const pagesBy = new Map(
      workers.map((w) => [
        w.name,
        chunkLines(w).reduce(
          (sum, l) => sum + (l.msg === 'sync chunk ended' ? (l.pages ?? 0) : 0),
          0,
        ),
      ]),
    )
    process.stdout.write(
      `scale-out: ${TENANTS} tenants set up in ${Math.round((connectedAt - began) / 1000)} s (workers started first), synced in ${Math.round((syncedAt - connectedAt) / 1000)} s; peak Postgres connections per worker ${JSON.stringify(Object.fromEntries(peak))}; pages committed per worker ${JSON.stringify(Object.fromEntries(pagesBy))}\n`,
    )

    for (const w of workers.filter((x) => x !== victim)) {
      w.child.kill('SIGTERM')
      expect(await w.exited, w.output().slice(-3000)).toBe(0)
    }
  }, 240_000)

  const startWorker = (name: string): Worker =>
    spawnWorker({
      name,
      env,
      databaseUrl: database.url,
      dataDir,
      // One pass at start; the test triggers the syncs itself.
      extraEnv: { GTM_SCHEDULE_RECONCILE_SECONDS: '3600' },
    })
})

function chunkLines(worker: Worker): ChunkLine[] {
  return logLines(worker).filter(
    (l): l is ChunkLine & Record<string, unknown> =>
      l.msg === 'sync chunk started' || l.msg === 'sync chunk ended',
  )
}

/** Chunks started and not ended (yet), by run id. */
function openChunks(lines: ChunkLine[]): Map<string, ChunkLine> {
  const open = new Map<string, ChunkLine>()
  for (const line of lines) {
    if (line.msg === 'sync chunk started') open.set(line.runId, line)
    else open.delete(line.runId)
  }
  return open
}

/** The SOQL of every keyset page query on `object` (no counts), from request number `from` on. */
function pageQueries(fake: SalesforceFake, object: SObjectType, from = 0): string[] {
  return fake.requests
    .slice(from)
    .map((r) => r.query.q ?? '')
    .filter((q) => q.includes(` FROM ${object} `) && !q.includes('COUNT()'))
}

/** Field values that carry the tenant's tag, for every generated record. */
function taggedFields(tag: string, counts: Record<SObjectType, number>) {
  const each = (n: number, fields: (i: number) => Record<string, unknown>) =>
    Object.fromEntries(Array.from({ length: n }, (_, i) => [i, fields(i)]))
  return {
    Account: each(counts.Account, (i) => ({ Name: `${tag} Account ${i}` })),
    Contact: each(counts.Contact, (i) => ({ Email: `c${i}@${tag}.example.com` })),
    Lead: each(counts.Lead, (i) => ({ Email: `l${i}@${tag}.example.com` })),
    Opportunity: each(counts.Opportunity, (i) => ({ StageName: `${tag} Stage ${i}` })),
    Task: each(counts.Task, (i) => ({ Subject: `${tag} Task ${i}` })),
    Event: each(counts.Event, (i) => ({ Subject: `${tag} Event ${i}` })),
  }
}

const ids = (t: Tenant, type: SObjectType) =>
  Array.from({ length: t.counts[type] }, (_, i) => [t.fake.idOf(type, i), i] as const)

function expectedAccounts(t: Tenant): string[] {
  return ids(t, 'Account').map(([id, i]) => `${id} ${t.tag} Account ${i}`)
}
function expectedPeople(t: Tenant): string[] {
  return [
    ...ids(t, 'Contact').map(([id, i]) => `${id} c${i}@${t.tag}.example.com`),
    ...ids(t, 'Lead').map(([id, i]) => `${id} l${i}@${t.tag}.example.com`),
  ]
}
function expectedActivities(t: Tenant): string[] {
  return [
    ...ids(t, 'Opportunity').map(([id, i]) => `${id} ${t.tag} Stage ${i}`),
    ...ids(t, 'Task').map(([id, i]) => `${id} ${t.tag} Task ${i}`),
    ...ids(t, 'Event').map(([id, i]) => `${id} ${t.tag} Event ${i}`),
  ]
}

/** Every row of a table, of every tenant (as the owner, past row-level security), by tenant. */
async function storedRows(
  owner: DbHandle,
  table: 'accounts' | 'people' | 'activities',
): Promise<Map<string, string[]>> {
  const rows =
    table === 'accounts'
      ? await owner.db
          .select({
            tenantId: accounts.tenantId,
            key: sql<string>`${accounts.externalId} || ' ' || ${accounts.name}`,
          })
          .from(accounts)
      : table === 'people'
        ? await owner.db
            .select({
              tenantId: people.tenantId,
              key: sql<string>`${people.externalId} || ' ' || coalesce(${people.email}, '')`,
            })
            .from(people)
        : await owner.db
            .select({
              tenantId: activities.tenantId,
              key: sql<string>`${activities.externalId} || ' ' || coalesce(${activities.properties} ->> 'subject', ${activities.properties} ->> 'stage', '')`,
            })
            .from(activities)
  const byTenant = new Map<string, string[]>()
  for (const r of rows) byTenant.set(r.tenantId, [...(byTenant.get(r.tenantId) ?? []), r.key])
  for (const list of byTenant.values()) list.sort()
  return byTenant
}
