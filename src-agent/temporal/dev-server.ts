/**
 * The embedded Temporal: with no TEMPORAL_ADDRESS, the agent runs `temporal server start-dev`
 * with its state in a SQLite file under the data directory, so schedules and running workflows
 * survive restarts. A second agent process (a CLI command while the worker runs) joins the
 * running server through `<dataDir>/temporal/server.json` instead of starting another one on
 * the same file.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import fs from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { Connection } from '@temporalio/client'
import { freePort } from '../../db/net.js'
import { AppError, ConfigError } from '../../shared/errors.js'
import type { Env } from '../config.js'
import type { Logger } from '../logging/logger.js'

export interface DevServer {
  /** host:port of the frontend gRPC service. */
  address: string
  /** True when this process started (or adopted) the server and so stops it. */
  owned: boolean
  stop(): Promise<void>
}

export interface DevServerOptions {
  /** The agent's data directory; state goes to `<dataDir>/temporal/temporal.db`. */
  dataDir: string
  env?: Env
  log: Logger
  /** Namespaces besides `default` to create. */
  namespaces?: string[]
  /**
   * Take over stopping a server that another process started (the worker does; a CLI command
   * joining the worker's server does not).
   */
  takeOwnership?: boolean
}

/** The temporal binary: TEMPORAL_CLI_PATH, else the one `npm install` provisions. */
export function temporalCliPath(env: Env = process.env): string {
  const explicit = env.TEMPORAL_CLI_PATH?.trim()
  const cacheDir = env.GTM_CACHE_DIR?.trim() || path.join(os.homedir(), '.cache', 'gtm')
  const exe = process.platform === 'win32' ? 'temporal.exe' : 'temporal'
  const candidate = explicit || path.join(cacheDir, 'bin', exe)
  if (!existsSync(candidate)) {
    throw new ConfigError(
      'config_missing',
      `The Temporal CLI was not found at ${candidate}. Install it with \`node build/install-temporal.mjs\` (npm install runs it), ` +
        'set TEMPORAL_CLI_PATH to a temporal binary, or set TEMPORAL_ADDRESS to use a running Temporal server.',
    )
  }
  return candidate
}

/**
 * The data directory's dev server when one is running (per `<dataDir>/temporal/server.json`),
 * else undefined. Starts nothing and writes nothing.
 */
export async function findRunningDevServer(
  dataDir: string,
): Promise<{ address: string; pid: number } | undefined> {
  const info = await readInfo(path.join(dataDir, 'temporal', 'server.json'))
  if (!info || !isAlive(info.pid) || !(await canConnect(info.port))) return undefined
  return { address: `127.0.0.1:${info.port}`, pid: info.pid }
}

/** Joins the data directory's dev server if one is running, else starts it. */
export async function locateDevServer(options: DevServerOptions): Promise<DevServer> {
  const dir = path.join(options.dataDir, 'temporal')
  await fs.mkdir(dir, { recursive: true, mode: 0o700 })
  const infoFile = path.join(dir, 'server.json')
  const info = await readInfo(infoFile)
  if (info && isAlive(info.pid) && (await canConnect(info.port))) {
    const address = `127.0.0.1:${info.port}`
    // A server whose owner died (killed) is adopted by whoever comes next.
    if (isAlive(info.ownerPid) && !options.takeOwnership) {
      return { address, owned: false, stop: () => Promise.resolve() }
    }
    await writeInfo(infoFile, { ...info, ownerPid: process.pid })
    options.log.info({ address, pid: info.pid }, 'joined the local Temporal dev server')
    return { address, owned: true, stop: () => stopIfOwner(infoFile, () => stopPid(info.pid)) }
  }
  const server = await startDevServer({
    cliPath: temporalCliPath(options.env),
    dbFile: path.join(dir, 'temporal.db'),
    log: options.log,
    ...(options.namespaces ? { namespaces: options.namespaces } : {}),
    ...uiPort(options.env),
  })
  await writeInfo(infoFile, { pid: server.pid, port: server.port, ownerPid: process.pid })
  return {
    address: server.address,
    owned: true,
    stop: () => stopIfOwner(infoFile, () => server.stop()),
  }
}

export interface StartedDevServer {
  address: string
  port: number
  pid: number
  stop(): Promise<void>
}

/**
 * Starts `temporal server start-dev` on a free loopback port with its state in `dbFile` (in
 * memory when omitted) and resolves once its `default` namespace answers.
 */
export async function startDevServer(options: {
  cliPath: string
  dbFile?: string
  log: Logger
  namespaces?: string[]
  uiPort?: number
}): Promise<StartedDevServer> {
  const port = await freePort()
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port)]
  args.push(...(options.uiPort ? ['--ui-port', String(options.uiPort)] : ['--headless']))
  if (options.dbFile) args.push('--db-filename', options.dbFile)
  for (const namespace of options.namespaces ?? []) args.push('--namespace', namespace)
  args.push('--log-level', 'warn', '--log-format', 'json')
  // Its own process group: a Ctrl-C in the terminal reaches the agent only, which stops its
  // worker first and the server last.
  const child = spawn(options.cliPath, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  const output: string[] = []
  const collect = (chunk: Buffer): void => {
    for (const line of chunk.toString().split('\n')) {
      if (!line.trim()) continue
      output.push(line)
      if (output.length > 20) output.shift()
      options.log.debug({ temporal: line.slice(0, 500) }, 'temporal dev server')
    }
  }
  child.stdout?.on('data', collect)
  child.stderr?.on('data', collect)
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  )
  child.once('error', (err) => output.push(err.message))
  const address = `127.0.0.1:${port}`
  try {
    await waitUntilReady(address, exited, 60_000)
  } catch (err) {
    child.kill('SIGKILL')
    throw new AppError(
      'internal',
      `The local Temporal dev server did not start (${err instanceof Error ? err.message : String(err)}). Its last output: ${output.slice(-5).join(' | ') || 'none'}`,
    )
  }
  options.log.info(
    { address, dbFile: options.dbFile ?? 'in memory' },
    'started the local Temporal dev server',
  )
  return { address, port, pid: child.pid ?? 0, stop: () => stopChild(child, exited) }
}

// --- implementation ---

interface ServerInfo {
  pid: number
  port: number
  /** The agent process responsible for stopping it. */
  ownerPid: number
}

async function waitUntilReady(
  address: string,
  exited: Promise<number | null>,
  timeoutMs: number,
): Promise<void> {
  let exitCode: number | null | undefined
  void exited.then((code) => (exitCode = code))
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (exitCode !== undefined) throw new Error(`it exited with code ${exitCode}`)
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1_000 })
      try {
        await connection.workflowService.describeNamespace({ namespace: 'default' })
        return
      } finally {
        await connection.close()
      }
    } catch (err) {
      if (Date.now() > deadline)
        throw new Error(`not ready after ${timeoutMs / 1000} s`, { cause: err })
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  }
}

async function stopChild(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
  await exited
  clearTimeout(timer)
}

/** Stops the server unless another process (the worker) took it over meanwhile. */
async function stopIfOwner(infoFile: string, stop: () => Promise<void>): Promise<void> {
  const info = await readInfo(infoFile)
  if (info && info.ownerPid !== process.pid && isAlive(info.ownerPid)) return
  await stop()
  await fs.rm(infoFile, { force: true })
}

async function stopPid(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM')
  } catch {
    return
  }
  const deadline = Date.now() + 15_000
  while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
  if (isAlive(pid)) process.kill(pid, 'SIGKILL')
}

function uiPort(env: Env = process.env): { uiPort?: number } {
  const raw = env.TEMPORAL_UI_PORT?.trim()
  if (!raw) return {}
  const port = Number(raw)
  if (!Number.isInteger(port) || port <= 0 || port > 65535) {
    throw new ConfigError('config_invalid', `TEMPORAL_UI_PORT must be a port number, not "${raw}".`)
  }
  return { uiPort: port }
}

async function readInfo(file: string): Promise<ServerInfo | undefined> {
  try {
    const parsed = JSON.parse(await fs.readFile(file, 'utf8')) as Partial<ServerInfo>
    if (
      typeof parsed.pid === 'number' &&
      typeof parsed.port === 'number' &&
      typeof parsed.ownerPid === 'number'
    ) {
      return { pid: parsed.pid, port: parsed.port, ownerPid: parsed.ownerPid }
    }
  } catch {
    // No server recorded (or a torn file): start one.
  }
  return undefined
}

async function writeInfo(file: string, info: ServerInfo): Promise<void> {
  await fs.writeFile(file, JSON.stringify(info), { mode: 0o600 })
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: alive, but another user's.
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port })
    socket.setTimeout(1_000)
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('timeout', () => {
      socket.destroy()
      resolve(false)
    })
    socket.once('error', () => resolve(false))
  })
}
