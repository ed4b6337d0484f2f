/**
 * `npm run bench`: end-to-end throughput and memory of a Salesforce sync, next to the two
 * ceilings it cannot beat. A report, not a test: it prints figures and verdicts; with --check a
 * missed target makes it exit 1.
 *
 * The fake Salesforce (a child process of its own) serves an org of 200,000 Contacts
 * (`--contacts`; `--quick`: 50,000) with Leads, Accounts, Opportunities, Tasks and Events in
 * proportion (org.ts), and takes 200 ms over each Bulk job. For each transport (REST keyset
 * pages, Bulk 2.0 CSV pages; `--transport rest|bulk|both`) it measures, each in a fresh child
 * process:
 *
 * - source ceiling: the connector reading every page with no pipeline work (ceilings.ts);
 * - pipeline: a full sync through runSync into a freshly migrated database (agent-run.ts),
 *   followed by an incremental sync with nothing changed, the connection given a year of earlier
 *   runs first (HISTORY_RUNS), as it has after a while; both timed around runSync, so process
 *   start, connecting and loading modules are not counted;
 * - sink ceiling: the rows that sync wrote, loaded with `COPY … FROM STDIN (FORMAT csv)` into
 *   `like … including all` copies of the tables, as psql's `\copy` does (ceilings.ts);
 * - peak RSS of the agent process for a full sync at a tenth of the size, at full size, and at
 *   1,000,000 Contacts (`--memory-contacts`, 0 to skip; skipped with --quick).
 *
 * It also times the mapping editor's live preview of 1,000 samples (mapping-preview.ts, in a
 * child process, the median of many runs after a warm-up): `--only preview` measures just that,
 * in seconds, with no fake and no Postgres.
 *
 * Postgres is DATABASE_URL's server when set (one new database per sync, dropped afterwards),
 * else an embedded Postgres in a temporary directory. `--runs N` repeats the timed
 * measurements and reports the median and the range.
 *
 *   npm run bench [-- --quick] [-- --runs 3] [-- --transport bulk] [-- --page-size 2000]
 *                 [-- --contacts 200000] [-- --memory-contacts 1000000] [-- --check]
 *   npm run bench -- --only preview [--check]
 *
 * --check exits 1 when a target is missed (always 1 when the benchmark cannot run to the end).
 */
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { startEmbeddedPostgres } from '../../db/embedded.js'
import { migrateDatabase } from '../../db/migrate.js'
import {
  DEFAULT_BULK_PAGE_SIZE,
  DEFAULT_PAGE_SIZE,
} from '../../src-agent/connectors/salesforce/sync.js'
import { startFaultProxy } from '../fakes/fault-proxy.js'
import type { AgentRunReport, GcPauses, Transport } from './agent-run.js'
import type { CeilingReport } from './ceilings.js'
import type { FakeReady } from './fake-server.js'
import type { PreviewReport } from './mapping-preview.js'
import { orgRecords } from './org.js'
import { cpuDuring, localPostgresPid } from './process-cpu.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const root = path.resolve(here, '../..')

const TARGETS = {
  ratio: 0.6,
  rssGrowth: 1.2,
  /** Peak RSS of a full sync at the memory size (1,000,000 Contacts). */
  rssMaxMiB: 300,
  incrementalShare: 0.01,
  /** The mapping preview of 1,000 samples, median ms: it reruns on every edit in the editor. */
  previewMs: 50,
}

const PREVIEW_SAMPLES = 1000

/** A year of runs of six streams every 15 minutes, behind the sync with nothing changed. */
const HISTORY_RUNS = 6 * 4 * 24 * 365

interface Sizes {
  contacts: number
}

interface Database {
  /** Owner URL of a migrated database. */
  url: string
  drop(): Promise<void>
}

interface Server {
  label: string
  /** The server's process, when it runs on this machine: its CPU time is reported. */
  pid: number | undefined
  database(name: string): Promise<Database>
  stop(): Promise<void>
}

interface TransportResult {
  transport: Transport
  source: CeilingReport[]
  /** CPU the fake used while each source ceiling read it (ms; undefined when unknown). */
  sourceFakeCpu: Array<number | undefined>
  pipeline: AgentRunReport[]
  /** CPU Postgres and the fake used over each pipeline run (ms; undefined when unknown). */
  pipelineCpu: Array<{ postgres: number | undefined; fake: number | undefined }>
  sink: CeilingReport[]
  small: AgentRunReport[]
  /** Full syncs at the memory size, for their peak RSS. */
  memory: AgentRunReport[]
  /** Full syncs at the small size through the fault proxy, with the faults each met. */
  faulted: Array<AgentRunReport & { faults: number }>
}

/**
 * Runs the benchmark and returns the process exit code: 1 when it could not run to the end, or
 * with --check when a target failed; else 0.
 */
async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      runs: { type: 'string', default: '1' },
      transport: { type: 'string', default: 'both' },
      'page-size': { type: 'string' },
      contacts: { type: 'string' },
      'memory-contacts': { type: 'string' },
      check: { type: 'boolean', default: false },
      only: { type: 'string', default: 'all' },
      'keep-logs': { type: 'boolean', default: false },
    },
  })
  const runs = Math.max(1, Number(values.runs) || 1)
  if (values.only !== 'all' && values.only !== 'preview') {
    process.stdout.write(`\nUnknown --only "${values.only}": use all or preview.\n`)
    return 1
  }
  let preview: PreviewReport
  try {
    preview = await child<PreviewReport>('mapping preview', 'mapping-preview.ts', [
      '--samples',
      String(PREVIEW_SAMPLES),
      '--runs',
      String(Math.max(30, runs * 10)),
    ])
  } catch (err) {
    process.stdout.write(`\nBenchmark did not start: ${describe(err)}\n`)
    return 1
  }
  if (values.only === 'preview') {
    const row = previewTarget(preview)
    process.stdout.write(
      `${['', ...table([['target', 'measured', 'goal', 'result'], row]), ''].join('\n')}\n`,
    )
    if (values.check && row[3] === 'FAIL') {
      process.stdout.write('--check: 1 target missed\n')
      return 1
    }
    return 0
  }
  // Default: the connector's own page sizes, as a sync from the CLI or a schedule uses them.
  const pageSize = Number(values['page-size']) || undefined
  const pageArgs = pageSize ? ['--page-size', String(pageSize)] : []
  const transports: Transport[] =
    values.transport === 'rest'
      ? ['rest']
      : values.transport === 'bulk'
        ? ['bulk']
        : ['rest', 'bulk']
  const large: Sizes = {
    contacts: Number(values.contacts) || (values.quick ? 50_000 : 200_000),
  }
  const small: Sizes = { contacts: Math.round(large.contacts / 10) }
  const memoryContacts = Number(values['memory-contacts'] ?? (values.quick ? 0 : 1_000_000))
  const memory: Sizes | undefined = memoryContacts > 0 ? { contacts: memoryContacts } : undefined
  const total = (s: Sizes) => orgRecords(s.contacts)

  let server: Server
  try {
    server = await startServer()
  } catch (err) {
    process.stdout.write(`\nBenchmark did not start: ${describe(err)}\n`)
    return 1
  }
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'gtm-bench-'))
  progress(
    `Postgres: ${server.label}; Node ${process.version}; ${os.cpus().length} CPUs; agent logs in ${tmp}${values['keep-logs'] ? '' : ' (removed at the end; --keep-logs keeps them)'}`,
  )
  const results: TransportResult[] = transports.map((transport) => ({
    transport,
    source: [],
    sourceFakeCpu: [],
    pipeline: [],
    pipelineCpu: [],
    sink: [],
    small: [],
    memory: [],
    faulted: [],
  }))
  let dbSerial = 0
  const database = () => server.database(`gtm_bench_${process.pid}_${++dbSerial}`)

  try {
    // Full size: ceilings and pipeline, interleaved so that background load hits them alike.
    let fake = await startFake(large)
    try {
      for (let run = 1; run <= runs; run++) {
        for (const result of results) {
          const t = result.transport
          const tag = `${t} ${count(total(large))} run ${run}/${runs}`
          const source = await cpuDuring([fake.pid], () =>
            child<CeilingReport>(`source ceiling (${tag})`, 'ceilings.ts', [
              'source',
              '--fake',
              JSON.stringify(fake.ready),
              '--transport',
              t,
              ...pageArgs,
            ]),
          )
          result.source.push(source.result)
          result.sourceFakeCpu.push(source.cpuMs[0])
          const db = await database()
          try {
            const pipeline = await cpuDuring([server.pid, fake.pid], () =>
              child<AgentRunReport>(`pipeline (${tag})`, 'agent-run.ts', [
                '--db',
                db.url,
                '--fake',
                JSON.stringify(fake.ready),
                '--transport',
                t,
                ...pageArgs,
                '--incremental',
                '--history-runs',
                String(HISTORY_RUNS),
                '--log-file',
                path.join(tmp, `agent-${t}-${run}.log`),
              ]),
            )
            const report = pipeline.result
            result.pipeline.push(report)
            // The run history given before the no-op sync is setup, not the pipeline's work.
            const postgres = pipeline.cpuMs[0]
            result.pipelineCpu.push({
              postgres:
                postgres === undefined ? undefined : postgres - (report.historyPostgresCpuMs ?? 0),
              fake: pipeline.cpuMs[1],
            })
            if (report.full.status === 'succeeded') {
              result.sink.push(
                await child<CeilingReport>(`sink ceiling (${tag})`, 'ceilings.ts', [
                  'sink',
                  '--db',
                  db.url,
                  '--tenant',
                  report.tenantId,
                  '--dir',
                  tmp,
                ]),
              )
            }
          } finally {
            await db.drop()
          }
        }
      }
    } finally {
      await fake.stop()
    }

    // A tenth of the size: the peak RSS the full size is compared with.
    fake = await startFake(small)
    try {
      for (let run = 1; run <= runs; run++) {
        for (const result of results) {
          const db = await database()
          try {
            result.small.push(
              await child<AgentRunReport>(
                `pipeline (${result.transport} ${count(total(small))} run ${run}/${runs})`,
                'agent-run.ts',
                [
                  '--db',
                  db.url,
                  '--fake',
                  JSON.stringify(fake.ready),
                  '--transport',
                  result.transport,
                  ...pageArgs,
                  '--log-file',
                  path.join(tmp, `agent-${result.transport}-small-${run}.log`),
                ],
              ),
            )
          } finally {
            await db.drop()
          }
          result.faulted.push(
            await faultedRun(fake.ready, result.transport, {
              database,
              pageSize,
              tag: `${result.transport} ${count(total(small))} run ${run}/${runs}`,
              logFile: path.join(tmp, `agent-${result.transport}-faulted-${run}.log`),
            }),
          )
        }
      }
    } finally {
      await fake.stop()
    }

    // The memory size: peak RSS only, one full sync per transport.
    if (memory) {
      fake = await startFake(memory)
      try {
        for (const result of results) {
          const db = await database()
          try {
            result.memory.push(
              await child<AgentRunReport>(
                `pipeline (${result.transport} ${count(total(memory))})`,
                'agent-run.ts',
                [
                  '--db',
                  db.url,
                  '--fake',
                  JSON.stringify(fake.ready),
                  '--transport',
                  result.transport,
                  ...pageArgs,
                  '--log-file',
                  path.join(tmp, `agent-${result.transport}-memory.log`),
                ],
              ),
            )
          } finally {
            await db.drop()
          }
        }
      } finally {
        await fake.stop()
      }
    }

    const failed = report({
      quick: values.quick,
      server,
      large,
      small,
      memory,
      pageSize,
      runs,
      results,
      preview,
    })
    if (!values['keep-logs']) await rm(tmp, { recursive: true, force: true }).catch(() => undefined)
    if (values.check && failed > 0) {
      process.stdout.write(`--check: ${failed} target${failed === 1 ? '' : 's'} missed\n`)
      return 1
    }
    return 0
  } catch (err) {
    // The agents' logs stay for a look at what went wrong.
    process.stdout.write(`\nBenchmark did not complete: ${describe(err)}\nLogs: ${tmp}\n`)
    return 1
  } finally {
    await server.stop().catch(() => undefined)
  }
}

/**
 * One full sync at the small size through a fault proxy that breaks 10% of the data requests
 * (seeded, so runs compare), with a 1 s idle timeout so that stalls are cut and retried.
 */
async function faultedRun(
  ready: FakeReady,
  transport: Transport,
  options: {
    database: () => Promise<{ url: string; drop: () => Promise<void> }>
    pageSize: number | undefined
    tag: string
    logFile: string
  },
): Promise<AgentRunReport & { faults: number }> {
  const proxy = await startFaultProxy(ready.url, { seed: 7, share: 0.1, stallMs: 1_500 })
  const db = await options.database()
  try {
    const report = await child<AgentRunReport>(
      `faulted pipeline (${options.tag})`,
      'agent-run.ts',
      [
        '--db',
        db.url,
        '--fake',
        JSON.stringify({ ...ready, url: proxy.url }),
        '--transport',
        transport,
        ...(options.pageSize ? ['--page-size', String(options.pageSize)] : []),
        '--idle-timeout-ms',
        '1000',
        '--log-file',
        options.logFile,
      ],
    )
    return { ...report, faults: proxy.injected.length }
  } finally {
    await db.drop()
    await proxy.close()
  }
}

// --- the report ---

function report(input: {
  quick: boolean
  server: Server
  large: Sizes
  small: Sizes
  memory: Sizes | undefined
  pageSize: number | undefined
  runs: number
  results: TransportResult[]
  preview: PreviewReport
}): number {
  const { large, small, memory, results } = input
  const records = orgRecords(large.contacts)
  const smallRecords = orgRecords(small.contacts)
  const memoryRecords = memory ? orgRecords(memory.contacts) : 0
  const label = (t: Transport) => (t === 'rest' ? 'REST' : 'Bulk')
  const perSecond = (n: number, ms: number) => n / (ms / 1000)
  const out: string[] = []
  out.push('')
  out.push(
    `GTM Clarity Connect sync benchmark: ${count(large.contacts)} Contacts and the other objects, ` +
      `${count(records)} records, from the fake Salesforce, ` +
      (input.pageSize
        ? `pages of ${count(input.pageSize)}`
        : `the connector's page sizes (REST ${count(DEFAULT_PAGE_SIZE)}, Bulk ${count(DEFAULT_BULK_PAGE_SIZE)})`),
  )
  out.push(
    `Postgres ${input.server.label}; Node ${process.version}; ${os.cpus().length} CPUs; ` +
      `fake, agent and Postgres in separate processes; ` +
      (input.runs === 1 ? '1 run each' : `${input.runs} runs each: median [min–max]`),
  )
  out.push('')

  const rows: string[][] = [
    [
      'throughput',
      'records',
      'seconds',
      'records/s',
      'agent CPU s',
      'Postgres CPU s',
      'fake CPU s',
    ],
  ]
  for (const r of results) {
    const t = label(r.transport)
    rows.push([
      `${t}  source ceiling: the connector reads every page`,
      count(r.source[0]?.records ?? 0),
      range(
        r.source.map((x) => x.ms / 1000),
        1,
      ),
      range(
        r.source.map((x) => perSecond(x.records, x.ms)),
        0,
      ),
      range(
        r.source.map((x) => x.cpuMs / 1000),
        1,
      ),
      '',
      seconds(r.sourceFakeCpu),
    ])
    rows.push([
      `${t}  sink ceiling: COPY of the rows it wrote`,
      count(r.sink[0]?.records ?? 0),
      range(
        r.sink.map((x) => x.ms / 1000),
        1,
      ),
      range(
        r.sink.map((x) => perSecond(x.records, x.ms)),
        0,
      ),
      '',
    ])
    rows.push([
      `${t}  pipeline: full sync (runSync)`,
      count(r.pipeline[0] ? written(r.pipeline[0].full) : 0),
      range(
        r.pipeline.map((x) => x.full.ms / 1000),
        1,
      ),
      range(
        r.pipeline.map((x) => perSecond(written(x.full), x.full.ms)),
        0,
      ),
      range(
        r.pipeline.map((x) => x.full.cpuMs / 1000),
        1,
      ),
      seconds(r.pipelineCpu.map((x) => x.postgres)),
      seconds(r.pipelineCpu.map((x) => x.fake)),
    ])
    rows.push([
      `${t}  pipeline: incremental, nothing changed, a year of runs before`,
      count(r.pipeline[0]?.incremental ? written(r.pipeline[0].incremental) : 0),
      range(
        r.pipeline.flatMap((x) => (x.incremental ? [x.incremental.ms / 1000] : [])),
        3,
      ),
      '',
      '',
    ])
  }
  out.push(...table(rows))
  out.push(
    'Postgres and fake CPU: over the whole pipeline run (process start, connect and the incremental',
    'sync included, the year of runs written before it left out), read from /proc; n/a where it',
    'cannot be read (another host, not Linux).',
  )
  for (const r of results) out.push(...cpuFloor(r, records))
  out.push('')

  const memRows: string[][] = [
    [
      'agent process, full sync',
      `peak RSS at ${count(smallRecords)}`,
      `peak RSS at ${count(records)}`,
      memory ? `peak RSS at ${count(memoryRecords)}` : 'memory size',
      `V8 heap peak at ${count(records)}`,
      `live heap after sync, ${count(smallRecords)} / ${count(records)}`,
    ],
  ]
  for (const r of results) {
    memRows.push([
      label(r.transport),
      `${range(r.small.map(rssMiB), 0)} MB`,
      `${range(r.pipeline.map(rssMiB), 0)} MB`,
      memory ? `${range(r.memory.map(rssMiB), 0)} MB` : 'skipped',
      `${range(
        r.pipeline.map((x) => x.peakHeapUsed / 2 ** 20),
        0,
      )} MB`,
      `${range(r.small.flatMap(liveMiB), 0)} / ${range(r.pipeline.flatMap(liveMiB), 0)} MB`,
    ])
  }
  out.push(...table(memRows))
  out.push(
    'Live heap: what the V8 heap still holds after the full sync and a forced full GC, i.e. what the',
    'sync retained; equal at both sizes means pages stream. The peaks above include uncollected garbage.',
  )
  out.push('')

  const faultRows: string[][] = [
    [
      `full sync at ${count(smallRecords)}, 10% of data requests faulted`,
      'faults met',
      'clean',
      'faulted',
      'faulted / clean',
      'rows',
    ],
  ]
  for (const r of results) {
    const clean = median(r.small.map((x) => x.full.ms))
    const faulted = median(r.faulted.map((x) => x.full.ms))
    const exact = r.faulted.every(
      (x) => x.full.status === 'succeeded' && x.full.created === smallRecords,
    )
    faultRows.push([
      label(r.transport),
      r.faulted.map((x) => x.faults).join(', '),
      `${range(
        r.small.map((x) => x.full.ms / 1000),
        1,
      )} s`,
      `${range(
        r.faulted.map((x) => x.full.ms / 1000),
        1,
      )} s`,
      `${(faulted / clean).toFixed(2)}×`,
      exact ? 'exact' : r.faulted.map((x) => `${x.full.status} ${x.full.created}`).join(', '),
    ])
  }
  out.push(...table(faultRows))
  out.push(
    'Faults: cut bodies, resets, 503 HTML pages, 500s, expired sessions and stalls past a 1 s idle',
    'timeout (test/fakes/fault-proxy.ts); each is retried or refreshed by the one retry policy.',
  )
  out.push('')

  const targetRows: string[][] = [['target', 'measured', 'goal', 'result']]
  for (const r of results) {
    const t = label(r.transport)
    const pipeline = median(r.pipeline.map((x) => perSecond(written(x.full), x.full.ms)))
    const ceiling = lowerCeiling(r)
    const ratio = pipeline / ceiling.perSecond
    targetRows.push([
      `${t}: pipeline / lower ceiling (${ceiling.kind})`,
      ratio.toFixed(2),
      `≥ ${TARGETS.ratio.toFixed(2)}`,
      verdict(ratio >= TARGETS.ratio),
    ])
    const smallRss = Math.max(...r.small.map(rssMiB))
    const largeRss = Math.max(...r.pipeline.map(rssMiB))
    const growth = largeRss / smallRss
    targetRows.push([
      `${t}: peak RSS at ${count(records)} / at ${count(smallRecords)}`,
      `${growth.toFixed(2)}×`,
      `≤ ${TARGETS.rssGrowth.toFixed(1)}×`,
      // Below ~100,000 records the heap has not grown to its steady size yet (see the note).
      input.quick ? 'info*' : verdict(growth <= TARGETS.rssGrowth),
    ])
    if (memory) {
      const memoryRss = Math.max(...r.memory.map(rssMiB))
      const complete = r.memory.every(
        (x) => x.full.status === 'succeeded' && x.full.created === memoryRecords,
      )
      targetRows.push([
        `${t}: peak RSS at ${count(memoryRecords)} (${count(memory.contacts)} Contacts)`,
        complete ? `${memoryRss.toFixed(0)} MB` : 'sync incomplete',
        `< ${TARGETS.rssMaxMiB} MB`,
        verdict(complete && memoryRss < TARGETS.rssMaxMiB),
      ])
    }
    const shares = r.pipeline.flatMap((x) => (x.incremental ? [x.incremental.ms / x.full.ms] : []))
    const share = median(shares)
    targetRows.push([
      `${t}: no-op incremental / full sync time`,
      `${(share * 100).toFixed(2)}%`,
      `≤ ${(TARGETS.incrementalShare * 100).toFixed(0)}%`,
      verdict(shares.length > 0 && share <= TARGETS.incrementalShare),
    ])
    const problems = checkCounts(r, large)
    targetRows.push([
      `${t}: every record created once, none refused`,
      problems.length === 0 ? 'yes' : problems.join('; '),
      'yes',
      verdict(problems.length === 0),
    ])
  }
  targetRows.push(previewTarget(input.preview))
  out.push(...table(targetRows))
  if (input.quick) {
    out.push(
      `* --quick: V8 lets the heap grow to its steady size over the first ~100,000 records, so peak`,
      `  RSS at ${count(smallRecords)} vs ${count(records)} measures that warm-up, not growth with the source; the full`,
      `  run compares ${count(orgRecords(20_000))} with ${count(orgRecords(200_000))}. The live heap above is the streaming check at this size.`,
    )
  }
  out.push('')
  process.stdout.write(`${out.join('\n')}\n`)
  return targetRows.filter((row) => row[3] === 'FAIL').length
}

/** The mapping preview's row of the targets table: its median against the ceiling. */
function previewTarget(preview: PreviewReport): string[] {
  const fmt = (ms: number) => ms.toFixed(1)
  const ok = preview.samples === PREVIEW_SAMPLES && preview.rows === PREVIEW_SAMPLES
  return [
    `mapping preview of ${count(preview.samples)} samples (median of ${preview.runs} runs)`,
    `${fmt(preview.medianMs)} ms [${fmt(preview.minMs)}–${fmt(preview.maxMs)}]`,
    `≤ ${TARGETS.previewMs} ms`,
    verdict(ok && preview.medianMs <= TARGETS.previewMs),
  ]
}

function checkCounts(r: TransportResult, large: Sizes): string[] {
  const expected = orgRecords(large.contacts)
  const problems: string[] = []
  for (const run of r.pipeline) {
    if (run.full.status !== 'succeeded')
      problems.push(`full sync ${run.full.status}: ${run.full.error ?? ''}`)
    else if (run.full.created !== expected || run.full.errors !== 0 || run.full.updated !== 0)
      problems.push(
        `created ${run.full.created}, updated ${run.full.updated}, errors ${run.full.errors}`,
      )
    const inc = run.incremental
    if (!inc || inc.status !== 'succeeded') problems.push(`incremental ${inc?.status ?? 'missing'}`)
    else if (written(inc) !== 0) problems.push(`incremental wrote ${written(inc)}`)
  }
  for (const sink of r.sink) {
    if (sink.records !== expected) problems.push(`sink copied ${sink.records}`)
  }
  if (r.pipeline.length === 0) problems.push('no pipeline run')
  return problems
}

/** Seconds of CPU as `range` gives them, from milliseconds some of which may be unknown. */
function seconds(ms: Array<number | undefined>): string {
  return ms.every((x) => x !== undefined)
    ? range(
        ms.map((x) => x / 1000),
        1,
      )
    : 'n/a'
}

/** The slower of the two ceilings, in records per second (medians over the runs). */
function lowerCeiling(r: TransportResult): { kind: 'source' | 'sink'; perSecond: number } {
  const rate = (xs: CeilingReport[]) => median(xs.map((x) => x.records / (x.ms / 1000)))
  const source = rate(r.source)
  const sink = rate(r.sink)
  return source <= sink ? { kind: 'source', perSecond: source } : { kind: 'sink', perSecond: sink }
}

/**
 * What the CPU a full sync used in all (agent, Postgres, fake) allows on this machine: however
 * well the stages overlap, the sync takes at least that CPU time over the number of CPUs.
 */
function cpuFloor(r: TransportResult, records: number): string[] {
  const totals = r.pipeline.map((x, i) => {
    const { postgres, fake } = r.pipelineCpu[i] ?? {}
    return postgres === undefined || fake === undefined ? undefined : x.full.cpuMs + postgres + fake
  })
  if (totals.length === 0 || totals.some((t) => t === undefined)) return []
  const cpus = os.availableParallelism()
  const total = median(totals as number[]) / 1000
  const floor = total / cpus
  const wall = median(r.pipeline.map((x) => x.full.ms)) / 1000
  const best = records / floor
  const label = r.transport === 'rest' ? 'REST' : 'Bulk'
  return [
    `${label}: the full sync used ${total.toFixed(1)} s of CPU in all (agent, Postgres, fake). On ${cpus} CPUs,`,
    `however well its stages overlap, it cannot take less than ${floor.toFixed(1)} s: ${count(Math.round(best))} records/s, ` +
      `${(best / lowerCeiling(r).perSecond).toFixed(2)} × the lower ceiling.`,
    `It took ${wall.toFixed(1)} s, so the CPUs were ${Math.round((100 * floor) / wall)}% busy on average.`,
    ...gcLine(r),
  ]
}

/** The agent's garbage collection pauses during its full syncs, where the runs reported them. */
function gcLine(r: TransportResult): string[] {
  const gcs = r.pipeline.map((x) => x.full.gc)
  if (gcs.length === 0) return []
  const pause = (gc: GcPauses) => (gc.scavengeMs + gc.fullMs) / 1000
  return [
    `During the full sync, the agent's main thread paused ${range(gcs.map(pause), 2)} s for garbage collection: ` +
      `${range(
        gcs.map((gc) => gc.scavenges),
        0,
      )} scavenges and ${range(
        gcs.map((gc) => gc.fullCollections),
        0,
      )} full collections (V8's helper threads add CPU beyond these pauses).`,
  ]
}

function written(x: { created: number; updated: number; deleted: number; errors: number }): number {
  return x.created + x.updated + x.deleted + x.errors
}

function rssMiB(x: AgentRunReport): number {
  return x.maxRssKiB / 1024
}

function liveMiB(x: AgentRunReport): number[] {
  return x.liveHeapAfter === undefined ? [] : [x.liveHeapAfter / 2 ** 20]
}

function verdict(ok: boolean): string {
  return ok ? 'PASS' : 'FAIL'
}

function median(xs: number[]): number {
  if (xs.length === 0) return Number.NaN
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

function range(xs: number[], digits: number): string {
  if (xs.length === 0) return 'n/a'
  const fmt = (x: number) =>
    x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
  const m = fmt(median(xs))
  return xs.length === 1 ? m : `${m} [${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}]`
}

function count(n: number): string {
  return n.toLocaleString('en-US')
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)))
  const line = (row: string[]) =>
    row
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join('  ')
      .trimEnd()
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)]
}

// --- processes ---

function progress(message: string): void {
  process.stderr.write(`bench: ${message}\n`)
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function spawnTs(script: string, args: string[]) {
  // --expose-gc only adds global.gc(), which agent-run calls once after its peak RSS is taken.
  return spawn(
    process.execPath,
    [
      '--expose-gc',
      // Node flags for every child, e.g. --cpu-prof --cpu-prof-dir=/tmp/prof to profile them.
      ...(process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
      '--import',
      'tsx',
      path.join(here, script),
      ...args,
    ],
    {
      cwd: root,
      stdio: ['pipe', 'pipe', 'inherit'],
      env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'info' },
    },
  )
}

/** Runs a child entry to its end and parses the JSON line it printed last. */
async function child<T>(label: string, script: string, args: string[]): Promise<T> {
  const started = performance.now()
  const proc = spawnTs(script, args)
  proc.stdin.end()
  let stdout = ''
  proc.stdout.setEncoding('utf8')
  proc.stdout.on('data', (chunk: string) => {
    stdout += chunk
  })
  const code = await new Promise<number | null>((resolve, reject) => {
    proc.once('error', reject)
    proc.once('close', resolve)
  })
  const last = stdout.trim().split('\n').at(-1) ?? ''
  if (code !== 0 || !last.startsWith('{')) {
    throw new Error(`${label} exited with ${code}: ${stdout.trim().slice(-500)}`)
  }
  progress(`${label}: ${((performance.now() - started) / 1000).toFixed(1)} s`)
  return JSON.parse(last) as T
}

/** Starts the fake in its own process; resolves once it printed its URL. */
async function startFake(
  sizes: Sizes,
): Promise<{ ready: FakeReady; pid: number | undefined; stop(): Promise<void> }> {
  const proc = spawnTs('fake-server.ts', ['--contacts', String(sizes.contacts)])
  const exited = new Promise<void>((resolve) => proc.once('close', () => resolve()))
  proc.stdout.setEncoding('utf8')
  const ready = await new Promise<FakeReady>((resolve, reject) => {
    let buffered = ''
    proc.once('error', reject)
    proc.once('close', (code) =>
      reject(new Error(`the fake exited with ${code} before it was ready`)),
    )
    proc.stdout.on('data', (chunk: string) => {
      buffered += chunk
      const newline = buffered.indexOf('\n')
      if (newline >= 0) resolve(JSON.parse(buffered.slice(0, newline)) as FakeReady)
    })
  })
  progress(
    `fake Salesforce (pid ${proc.pid}) serving ${count(sizes.contacts)} Contacts, ${count(orgRecords(sizes.contacts))} records, at ${ready.url}`,
  )
  return {
    ready,
    pid: proc.pid,
    stop: async () => {
      proc.stdin.end()
      await exited
    },
  }
}

// --- Postgres ---

async function startServer(): Promise<Server> {
  const external = process.env.DATABASE_URL
  if (external) {
    return {
      label: `${await serverVersion(external)} at DATABASE_URL`,
      pid: await localPostgresPid(external),
      database: (name) => createDatabase(external, name),
      stop: () => Promise.resolve(),
    }
  }
  // Its own directory: Postgres runs as another user when we are root, and mkdtemp is 0700.
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'gtm-bench-pg-'))
  const embedded = await startEmbeddedPostgres({ dataDir, database: 'postgres' })
  return {
    label: `${await serverVersion(embedded.url)} embedded (temporary directory)`,
    pid: await localPostgresPid(embedded.url),
    database: (name) => createDatabase(embedded.url, name),
    stop: async () => {
      await embedded.stop()
      await rm(dataDir, { recursive: true, force: true })
    },
  }
}

async function serverVersion(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const res = await client.query<{ v: string }>(`select current_setting('server_version') as v`)
    return res.rows[0]?.v ?? '?'
  } finally {
    await client.end()
  }
}

/** A new, migrated database on the server of `adminUrl`, dropped by `drop()`. */
async function createDatabase(adminUrl: string, name: string): Promise<Database> {
  const admin = new pg.Client({ connectionString: adminUrl })
  await admin.connect()
  try {
    await admin.query(`create database ${pg.escapeIdentifier(name)}`)
  } finally {
    await admin.end()
  }
  const url = new URL(adminUrl)
  url.pathname = `/${name}`
  await migrateDatabase(url.toString())
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: adminUrl })
      await c.connect()
      try {
        await c.query(`drop database if exists ${pg.escapeIdentifier(name)} with (force)`)
      } finally {
        await c.end()
      }
    },
  }
}

process.exit(await main())
