import { spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { TEST_KEY_HEX } from './agent.js'
import { repoRoot } from './cli.js'
import type { TemporalTestEnv } from './temporal.js'

/** A `gtm-agent worker` process of a test, with everything it wrote. */
export interface WorkerProcess {
  name: string
  child: ChildProcess
  /** stdout and stderr so far, interleaved as they arrived. */
  output: () => string
  /** Its exit code, or the signal that ended it. */
  exited: Promise<number | string>
}

/**
 * Spawns `gtm-agent worker` through its bin, as an operator starts it, against the test's Temporal
 * and database. None of the test process's own agent settings leak in; `env` adds to the test's.
 * Its Postgres sessions carry `name` as their application name.
 */
export function spawnWorker(options: {
  name: string
  env: TemporalTestEnv
  databaseUrl: string
  dataDir: string
  args?: string[]
  extraEnv?: Record<string, string>
}): WorkerProcess {
  const agentVariables =
    /^(DATABASE_URL|CONNECTOR_ENCRYPTION_KEYS?(_PREVIOUS)?|GTM_.*|LOG_LEVEL|TEMPORAL_.*|PG.*)$/
  const inherited: Record<string, string> = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !agentVariables.test(key)) inherited[key] = value
  }
  const child = spawn(
    process.execPath,
    [path.join(repoRoot, 'src-agent/bin/gtm-agent.mjs'), 'worker', ...(options.args ?? [])],
    {
      cwd: repoRoot,
      env: {
        ...inherited,
        DATABASE_URL: options.databaseUrl,
        CONNECTOR_ENCRYPTION_KEY: TEST_KEY_HEX,
        TEMPORAL_ADDRESS: options.env.address,
        TEMPORAL_TASK_QUEUE: options.env.taskQueue,
        GTM_WORKFLOW_BUNDLE: options.env.bundlePath,
        GTM_DATA_DIR: options.dataDir,
        LOG_LEVEL: 'info',
        PGAPPNAME: options.name,
        ...options.extraEnv,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  return { name: options.name, child, ...watchProcess(child) }
}

/** A child's stdout and stderr so far, interleaved as they arrived, and its end. */
export function watchProcess(child: ChildProcess): {
  output: () => string
  exited: Promise<number | string>
} {
  let text = ''
  child.stdout?.on('data', (c: Buffer) => (text += c.toString()))
  child.stderr?.on('data', (c: Buffer) => (text += c.toString()))
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  )
  return { output: () => text, exited }
}

/** Kills (SIGKILL) the workers still running and waits until every one has exited. */
export async function killWorkers(workers: readonly WorkerProcess[]): Promise<void> {
  for (const w of workers) {
    if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL')
    await w.exited
  }
}

/** The JSON log lines a worker wrote so far (a partial last line is left for later). */
export function logLines(worker: WorkerProcess): Array<Record<string, unknown> & { msg?: string }> {
  const parsed: Array<Record<string, unknown> & { msg?: string }> = []
  for (const line of worker.output().split('\n').slice(0, -1)) {
    if (!line.startsWith('{')) continue
    try {
      parsed.push(JSON.parse(line) as Record<string, unknown>)
    } catch {
      // Not a log line.
    }
  }
  return parsed
}
