/**
 * Child entry of the benchmark: the agent side of one full sync, in a process of its own so that
 * its peak RSS is this run's alone. Connects a fresh tenant to the fake through the real connect
 * service, runs a full sync through runSync (real Salesforce connector, mapping, quality checks,
 * persist, Postgres), optionally an incremental sync right after (nothing changed in between),
 * and prints one JSON line (AgentRunReport) on stdout. Log lines go to --log-file.
 *
 *   tsx test/bench/agent-run.ts --db <owner url> --fake <fake json> --transport bulk [--incremental]
 *
 * `--repeat-incremental N` then times N more syncs with nothing changed, one after the other
 * (each after a full collection and a pause), to compare one build with another on many
 * samples; the bench itself does not use it.
 */
import { randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { constants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { sql } from 'drizzle-orm'
import { createDb } from '../../db/client.js'
import { connectors, tenants } from '../../db/schema/index.js'
import { withTenant } from '../../db/tenant.js'
import '../../src-agent/connectors/salesforce/index.js'
import { connectorRegistry } from '../../src-agent/connectors/registry.js'
import { streamsOf } from '../../src-agent/connectors/streams.js'
import { createLogger } from '../../src-agent/logging/logger.js'
import { runSync, type SyncDeps, type SyncSummary } from '../../src-agent/pipeline/run-sync.js'
import { keyringFromHex } from '../../src-agent/secrets/crypto.js'
import { connect } from '../../src-agent/services/connections.js'
import { benchConnectConfig } from './connect-config.js'
import type { FakeReady } from './fake-server.js'
import { localPostgresPid, processTreeCpuMs } from './process-cpu.js'

export type Transport = 'rest' | 'bulk'

export interface AgentRunReport {
  tenantId: string
  transport: Transport
  full: Pick<SyncSummary, 'status' | 'pages' | 'created' | 'updated' | 'deleted' | 'errors'> & {
    error?: string
    ms: number
    /** CPU time of this process during the sync (main thread, GC and libuv threads). */
    cpuMs: number
    /** The main thread's garbage collection pauses during the sync (see gcPauses). */
    gc: GcPauses
  }
  incremental?: Pick<
    SyncSummary,
    'status' | 'pages' | 'created' | 'updated' | 'deleted' | 'errors'
  > & { error?: string; ms: number; cpuMs: number; gc: GcPauses }
  /** The syncs with nothing changed after it (`--repeat-incremental`): wall and CPU ms each. */
  repeats?: Array<{ ms: number; cpuMs: number }>
  /** Peak resident set size of this process over the full sync, in KiB (getrusage). */
  maxRssKiB: number
  /**
   * Largest V8 heap seen by a 100 ms sampler over the full sync, in bytes (to tell heap from
   * other memory).
   */
  peakHeapUsed: number
  /**
   * V8 heap still in use after the full sync and a full GC (run with --expose-gc), in bytes:
   * what the sync retained, as opposed to garbage not yet collected.
   */
  liveHeapAfter?: number
  /**
   * CPU the Postgres server used to insert the run history (`--history-runs`), in ms, which the
   * bench leaves out of the pipeline's Postgres CPU; undefined when /proc cannot tell.
   */
  historyPostgresCpuMs?: number
  cpuUserMs: number
  cpuSystemMs: number
}

/**
 * Garbage collection pauses of the main thread, as Node's performance timeline reports them:
 * young-generation scavenges and full (mark-compact) collections, in ms. Work V8 does on its
 * helper threads meanwhile is in cpuMs, not here.
 */
export interface GcPauses {
  scavenges: number
  scavengeMs: number
  fullCollections: number
  fullMs: number
}

const gcPauses: GcPauses = { scavenges: 0, scavengeMs: 0, fullCollections: 0, fullMs: 0 }
function countPauses(entries: readonly PerformanceEntry[]): void {
  for (const entry of entries) {
    const { kind } = (entry as PerformanceEntry & { detail: { kind: number } }).detail
    if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
      gcPauses.scavenges++
      gcPauses.scavengeMs += entry.duration
    } else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
      gcPauses.fullCollections++
      gcPauses.fullMs += entry.duration
    }
  }
}
const gcObserver = new PerformanceObserver((list) => countPauses(list.getEntries()))

const { values } = parseArgs({
  options: {
    db: { type: 'string' },
    fake: { type: 'string' },
    transport: { type: 'string', default: 'bulk' },
    'page-size': { type: 'string' },
    incremental: { type: 'boolean', default: false },
    'repeat-incremental': { type: 'string' },
    'history-runs': { type: 'string' },
    'idle-timeout-ms': { type: 'string' },
    'log-file': { type: 'string' },
  },
})
if (!values.db || !values.fake) throw new Error('agent-run needs --db and --fake')
const fake = JSON.parse(values.fake) as FakeReady
const transport = values.transport === 'rest' ? 'rest' : 'bulk'
const pageSize = values['page-size'] ? Number(values['page-size']) : undefined
const repeat = Number(values['repeat-incremental'] ?? 0)
if (!Number.isSafeInteger(repeat) || repeat < 0) {
  throw new Error(`--repeat-incremental takes a count, not "${values['repeat-incremental']}"`)
}

let peakHeapUsed = 0
const sampler = setInterval(() => {
  peakHeapUsed = Math.max(peakHeapUsed, process.memoryUsage().heapUsed)
}, 100)
sampler.unref()

const handle = createDb(values.db)
const log = createLogger({
  level: (process.env.BENCH_LOG_LEVEL as 'info' | undefined) ?? 'info',
  destination: values['log-file']
    ? createWriteStream(values['log-file'], { flags: 'a' })
    : process.stderr,
})
const deps: SyncDeps = {
  handle,
  keyring: keyringFromHex('b'.repeat(64)),
  registry: connectorRegistry,
  log,
  userId: 'bench:runner',
}

try {
  const tenantId = `bench-${transport}-${randomBytes(4).toString('hex')}`
  await withTenant(handle.db, tenantId, (tx) =>
    tx.insert(tenants).values({ id: tenantId, name: tenantId, slug: tenantId }),
  )
  await connect(
    { db: handle.db, registry: deps.registry, keyring: deps.keyring, log },
    {
      tenantId,
      connectorType: 'salesforce',
      configJson: benchConnectConfig(
        fake,
        transport,
        values['idle-timeout-ms'] ? { idleTimeoutMs: Number(values['idle-timeout-ms']) } : {},
      ),
      userId: deps.userId,
    },
  )

  const sync = async (full: boolean) => {
    const started = performance.now()
    const cpu = process.cpuUsage()
    Object.assign(gcPauses, { scavenges: 0, scavengeMs: 0, fullCollections: 0, fullMs: 0 })
    gcObserver.observe({ entryTypes: ['gc'] })
    const summary = await runSync(deps, {
      tenantId,
      connectorType: 'salesforce',
      ...(pageSize ? { pageSize } : {}),
      ...(full ? { full: true } : {}),
    })
    const ms = performance.now() - started
    const { user, system } = process.cpuUsage(cpu)
    // Entries not delivered yet (the sync's last collections) are taken now.
    countPauses(gcObserver.takeRecords())
    gcObserver.disconnect()
    const gc = { ...gcPauses }
    const { status, pages, created, updated, deleted, errors } = summary
    return {
      status,
      pages,
      created,
      updated,
      deleted,
      errors,
      ms,
      cpuMs: (user + system) / 1000,
      gc,
      ...(summary.error ? { error: summary.error } : {}),
    }
  }

  const full = await sync(true)
  // The sampler is the full sync's (its figure is that sync's peak): it does not run inside the
  // timed sync with nothing changed.
  clearInterval(sampler)
  peakHeapUsed = Math.max(peakHeapUsed, process.memoryUsage().heapUsed)
  const usage = process.resourceUsage()
  const historyPostgresCpuMs =
    values.incremental && full.status === 'succeeded' && values['history-runs']
      ? await addRunHistory(tenantId, Number(values['history-runs']))
      : undefined
  // What the full sync left is collected before the sync with nothing changed starts, as it is
  // by then in an agent: that sync comes minutes later, and V8 collects an idle process's heap
  // seconds after it goes quiet. Left to chance, that collection sometimes fell inside the
  // timed sync and added about 30 ms to its 60.
  const gc = (globalThis as { gc?: () => void }).gc
  gc?.()
  const liveHeapAfter = gc ? process.memoryUsage().heapUsed : undefined
  // Its pause is reported a turn later: not the timed sync's.
  await new Promise((resolve) => setImmediate(resolve))
  const incremental =
    values.incremental && full.status === 'succeeded' ? await sync(false) : undefined
  const repeats: Array<{ ms: number; cpuMs: number }> = []
  for (let i = 0; incremental?.status === 'succeeded' && i < repeat; i++) {
    gc?.()
    await new Promise((resolve) => setTimeout(resolve, 50))
    const { ms, cpuMs } = await sync(false)
    repeats.push({ ms, cpuMs })
  }
  const report: AgentRunReport = {
    tenantId,
    transport,
    full,
    ...(incremental ? { incremental } : {}),
    ...(repeats.length > 0 ? { repeats } : {}),
    maxRssKiB: usage.maxRSS,
    peakHeapUsed,
    ...(liveHeapAfter === undefined ? {} : { liveHeapAfter }),
    ...(historyPostgresCpuMs === undefined ? {} : { historyPostgresCpuMs }),
    cpuUserMs: usage.userCPUTime / 1000,
    cpuSystemMs: usage.systemCPUTime / 1000,
  }
  process.stdout.write(`${JSON.stringify(report)}\n`)
} finally {
  clearInterval(sampler)
  await handle.close()
}

/**
 * `count` ended runs of the tenant's connection, dated before its full sync: one every 15 minutes
 * round its streams (`--history-runs`; 210,240 is a year of six streams), one in twenty failed,
 * as a connection's history is after a while, so that the sync with nothing changed is timed as
 * it runs then. The table is vacuumed and analyzed, as autovacuum would have done by then.
 * Returns the CPU the Postgres server spent on it (ms), when it runs on this machine.
 */
async function addRunHistory(tenantId: string, count: number): Promise<number | undefined> {
  if (!Number.isSafeInteger(count) || count < 0) throw new Error('--history-runs takes a count')
  const server = await localPostgresPid(values.db!)
  const before = server === undefined ? undefined : await processTreeCpuMs(server)
  const streams = streamsOf(connectorRegistry.get('salesforce')).map((stream) => stream.id)
  await withTenant(handle.db, tenantId, async (tx) => {
    const [connection] = await tx.select({ id: connectors.id }).from(connectors)
    if (!connection) throw new Error(`tenant ${tenantId} has no connection`)
    await tx.execute(sql`
      insert into sync_runs (tenant_id, connector_id, stream, mode, status, started_at, finished_at)
      select ${tenantId}, ${connection.id},
        (string_to_array(${streams.join(',')}, ','))[1 + g % ${streams.length}],
        'incremental', case when g % 20 = 7 then 'failed' else 'succeeded' end, at, at
      from generate_series(0, ${count - 1}) g,
        lateral (select now() - make_interval(mins => 15 * (g / ${streams.length} + 1))
          - interval '1 hour' as at) stamp`)
  })
  const owner = createDb(values.db!, { asOwner: true })
  try {
    await owner.db.execute(sql`vacuum analyze sync_runs`)
    // Its writes flushed now, so that the sync timed next does not meet them (a superuser's).
    await owner.db.execute(sql`checkpoint`).catch(() => undefined)
  } finally {
    await owner.close()
  }
  const after = server === undefined ? undefined : await processTreeCpuMs(server)
  return before === undefined || after === undefined ? undefined : after - before
}
