/**
 * The two ceilings a sync cannot beat, each measured in a child process of its own:
 *
 * - source: every page read from the fake by the Salesforce connector itself (same HTTP, same
 *   page size, same REST or Bulk path, same cursor), with no pipeline work at all, and Bulk jobs
 *   polled every millisecond, so that only the fake's own time over a job counts.
 * - sink: the rows a full sync wrote, loaded as psql's `\copy` does: one `COPY … FROM STDIN
 *   (FORMAT csv)` stream per table, into `like … including all` copies (same columns, defaults,
 *   constraints and indexes), the fastest way Postgres ingests them. The rows are first dumped
 *   to CSV files (not timed), so the timed part is Postgres ingesting them.
 *
 *   tsx test/bench/ceilings.ts source --fake <fake json> --transport rest
 *   tsx test/bench/ceilings.ts sink --db <owner url> --tenant <tenant id> --dir <tmp dir>
 *
 * Each prints one JSON line (CeilingReport) on stdout.
 */
import { createReadStream, createWriteStream } from 'node:fs'
import { rm, stat } from 'node:fs/promises'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import pg from 'pg'
import { from as copyFrom, to as copyTo } from 'pg-copy-streams'
import { salesforceConnector } from '../../src-agent/connectors/salesforce/index.js'
import { salesforceConfigSchema } from '../../src-agent/connectors/salesforce/schemas.js'
import { withAllRecords } from '../../src-agent/pipeline/fetch-page.js'
import type { Transport } from './agent-run.js'
import { benchConnectConfig } from './connect-config.js'
import type { FakeReady } from './fake-server.js'

export interface CeilingReport {
  kind: 'source' | 'sink'
  records: number
  pages: number
  ms: number
  /** CPU time of this process during the timed part. */
  cpuMs: number
  /** Sink only: bytes of CSV ingested. */
  bytes?: number
  maxRssKiB: number
}

/** Reads every page and every record of it through the connector and throws them away. */
export async function sourceCeiling(
  fake: FakeReady,
  transport: Transport,
  pageSize: number | undefined,
): Promise<CeilingReport> {
  const config = salesforceConfigSchema.parse(
    benchConnectConfig(fake, transport, { bulkPollIntervalMs: 1 }),
  )
  const { credentials } = await salesforceConnector.authenticate(config)
  let records = 0
  let pages = 0
  const started = performance.now()
  const cpu = process.cpuUsage()
  // Every stream in turn, as a sync reads them.
  for (const stream of salesforceConnector.streams) {
    let cursor: string | null = null
    for (;;) {
      const page = await salesforceConnector.sync(credentials, cursor, {
        full: true,
        ...(pageSize ? { pageSize } : {}),
        stream: stream.id,
      })
      // Every record read out of the page, those it left unread too (a Bulk page's CSV rows).
      records += withAllRecords(page).records.length
      pages++
      cursor = page.cursor
      if (!page.hasMore) break
    }
  }
  const ms = performance.now() - started
  const { user, system } = process.cpuUsage(cpu)
  return {
    kind: 'source',
    records,
    pages,
    ms,
    cpuMs: (user + system) / 1000,
    maxRssKiB: process.resourceUsage().maxRSS,
  }
}

/** The columns a sync writes (the rest take their defaults, as in the pipeline's INSERT). */
const SINK_TABLES = [
  {
    table: 'accounts',
    columns: [
      'tenant_id',
      'source',
      'external_id',
      'name',
      'domain',
      'industry',
      'employee_count',
      'annual_revenue',
      'source_data',
      'stream',
    ],
  },
  {
    table: 'people',
    columns: [
      'tenant_id',
      'source',
      'external_id',
      'email',
      'first_name',
      'last_name',
      'title',
      'phone',
      'account_external_id',
      'source_data',
      'stream',
    ],
  },
  {
    table: 'activities',
    columns: [
      'tenant_id',
      'source',
      'external_id',
      'type',
      'channel',
      'occurred_at',
      'person_external_id',
      'account_external_id',
      'properties',
      'source_data',
      'stream',
    ],
  },
] as const

/** COPYs one tenant's accounts, people and activities into fresh `bench_*` copies of the tables. */
export async function sinkCeiling(
  url: string,
  tenantId: string,
  dir: string,
): Promise<CeilingReport> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  const files: string[] = []
  try {
    const dumps: Array<{ table: string; columns: readonly string[]; file: string; rows: number }> =
      []
    for (const { table, columns } of SINK_TABLES) {
      const bench = `bench_${table}`
      await client.query(`drop table if exists ${bench}`)
      await client.query(`create table ${bench} (like ${table} including all)`)
      const file = path.join(dir, `${bench}.csv`)
      files.push(file)
      const out = client.query(
        copyTo(
          `copy (select ${columns.join(', ')} from ${table} where tenant_id = ${client.escapeLiteral(tenantId)}) to stdout (format csv)`,
        ),
      )
      await pipeline(out, createWriteStream(file))
      dumps.push({ table: bench, columns, file, rows: out.rowCount })
    }
    // The sync just wrote these tables, so autovacuum is due on them and would run during the
    // timed COPY: vacuum them now (an autovacuum under way gives way to it), let any other
    // autovacuum of this database finish, and write the dirty pages out (the rows just read
    // set their hint bits) before the clock starts, so that Postgres ingests the rows alone.
    await client.query(`vacuum (analyze) ${SINK_TABLES.map((t) => t.table).join(', ')}`)
    await quiet(client)
    await client.query('checkpoint')
    let records = 0
    let bytes = 0
    const started = performance.now()
    const cpu = process.cpuUsage()
    for (const dump of dumps) {
      const into = client.query(
        copyFrom(`copy ${dump.table} (${dump.columns.join(', ')}) from stdin (format csv)`),
      )
      await pipeline(createReadStream(dump.file, { highWaterMark: 1 << 20 }), into)
      if (into.rowCount !== dump.rows) {
        throw new Error(`COPY into ${dump.table} took ${into.rowCount} rows of ${dump.rows}`)
      }
      records += into.rowCount
      bytes += (await stat(dump.file)).size
    }
    const ms = performance.now() - started
    const { user, system } = process.cpuUsage(cpu)
    for (const dump of dumps) await client.query(`drop table ${dump.table}`)
    return {
      kind: 'sink',
      records,
      pages: 1,
      ms,
      cpuMs: (user + system) / 1000,
      bytes,
      maxRssKiB: process.resourceUsage().maxRSS,
    }
  } finally {
    await client.end().catch(() => undefined)
    for (const file of files) await rm(file, { force: true })
  }
}

/** Waits (up to a minute) until no autovacuum worker is at work in the client's database. */
async function quiet(client: pg.Client): Promise<void> {
  const until = Date.now() + 60_000
  while (Date.now() < until) {
    const { rows } = await client.query<{ n: number }>(
      `select count(*)::int as n from pg_stat_activity
        where backend_type = 'autovacuum worker' and datname = current_database()`,
    )
    if (rows[0]!.n === 0) return
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      fake: { type: 'string' },
      transport: { type: 'string', default: 'bulk' },
      'page-size': { type: 'string' },
      db: { type: 'string' },
      tenant: { type: 'string' },
      dir: { type: 'string' },
    },
  })
  let report: CeilingReport
  if (positionals[0] === 'source' && values.fake) {
    const transport: Transport = values.transport === 'rest' ? 'rest' : 'bulk'
    report = await sourceCeiling(
      JSON.parse(values.fake) as FakeReady,
      transport,
      values['page-size'] ? Number(values['page-size']) : undefined,
    )
  } else if (positionals[0] === 'sink' && values.db && values.tenant && values.dir) {
    report = await sinkCeiling(values.db, values.tenant, values.dir)
  } else {
    throw new Error(
      'usage: ceilings.ts source --fake <json> | sink --db <url> --tenant <id> --dir <dir>',
    )
  }
  process.stdout.write(`${JSON.stringify(report)}\n`)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main()
