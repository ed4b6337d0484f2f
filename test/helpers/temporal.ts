import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { Client, Connection } from '@temporalio/client'
import { expect } from 'vitest'
import { NativeConnection, Worker, bundleWorkflowCode } from '@temporalio/worker'
import { createDb, type DbHandle } from '../../db/client.js'
import { createDatabase } from './db.js'
import { connectorRegistry } from '../../src-agent/connectors/registry.js'
import type { Logger } from '../../src-agent/logging/logger.js'
import { keyringFromHex } from '../../src-agent/secrets/crypto.js'
import { connect } from '../../src-agent/services/connections.js'
import { createActivities } from '../../src-agent/temporal/activities.js'
import { startDevServer, temporalCliPath } from '../../src-agent/temporal/dev-server.js'
import type { SchedulerDeps } from '../../src-agent/temporal/scheduler.js'
import { createWorker, installRuntimeLogger } from '../../src-agent/temporal/worker.js'
import { TEST_KEY_HEX, memoryLogger } from './agent.js'
import { databaseUrl, seedTenant } from './db.js'
import { watchProcess } from './worker-process.js'

/**
 * The Temporal CLI the tests run: TEMPORAL_CLI_PATH, else the cache path that `npm install`
 * (build/install-temporal.mjs) provisions. Missing, it fails with a message that says so.
 */
export function testTemporalCli(): string {
  try {
    return temporalCliPath(process.env)
  } catch (err) {
    throw new Error(
      `The Temporal CLI is missing, so the Temporal tests cannot run: run "node build/install-temporal.mjs" (npm install runs it) or set TEMPORAL_CLI_PATH. ${err instanceof Error ? err.message : ''}`,
    )
  }
}

export interface TemporalTestEnv {
  address: string
  client: Client
  nativeConnection: NativeConnection
  /** Unique to this file, so test files never steal each other's tasks. */
  taskQueue: string
  /** This file's workflow bundle, built once (also written to `bundlePath` for worker processes). */
  workflowBundle: { code: string }
  bundlePath: string
  /** A pool sized for the worker's concurrent activities (each may hold two connections). */
  activityDb: DbHandle
  log: Logger
  logLines: () => string
  schedulerDeps(userId?: string): SchedulerDeps
  close(): Promise<void>
}

/** One dev server (in memory) per test file, a client, and the workflow bundle. */
export async function startTemporalTestEnv(
  prefix: string,
  options: { databaseUrl?: string } = {},
): Promise<TemporalTestEnv> {
  const { log, lines } = memoryLogger('info')
  installRuntimeLogger(log)
  const server = await startDevServer({ cliPath: testTemporalCli(), log })
  const connection = await Connection.connect({ address: server.address })
  const nativeConnection = await NativeConnection.connect({ address: server.address })
  const { code } = await bundleWorkflowCode({
    workflowsPath: path.resolve(import.meta.dirname, '../../src-agent/temporal/workflows.ts'),
    logger: quietBundlerLogger,
  })
  const dir = await mkdtemp(path.join(os.tmpdir(), `gtm-${prefix}-`))
  const bundlePath = path.join(dir, 'workflow-bundle.js')
  await writeFile(bundlePath, code)
  const activityDb = createDb(options.databaseUrl ?? databaseUrl(), { max: 12 })
  const client = new Client({ connection })
  const taskQueue = `${prefix}-${randomBytes(4).toString('hex')}`
  return {
    address: server.address,
    client,
    nativeConnection,
    taskQueue,
    workflowBundle: { code },
    bundlePath,
    activityDb,
    log,
    logLines: lines,
    schedulerDeps: (userId = 'test:runner') => ({ client, taskQueue, handle: activityDb, userId }),
    close: async () => {
      await nativeConnection.close()
      await connection.close()
      await activityDb.close()
      await server.stop()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** An in-process worker over real activities; `stop` shuts it down and waits. */
export async function startTestWorker(
  env: TemporalTestEnv,
): Promise<{ worker: Worker; stop(): Promise<void> }> {
  const worker = await createWorker({
    connection: env.nativeConnection,
    taskQueue: env.taskQueue,
    activities: createActivities({
      handle: env.activityDb,
      keyring: keyringFromHex(TEST_KEY_HEX),
      registry: connectorRegistry,
      log: env.log,
    }),
    log: env.log,
    workflowBundle: env.workflowBundle,
  })
  const running = worker.run()
  return {
    worker,
    stop: async () => {
      if (worker.getState() === 'RUNNING') worker.shutdown()
      await running
    },
  }
}

/** A fresh tenant connected to a connector (through the real connect service). */
export async function connectTenant(
  handle: DbHandle,
  connectorType: string,
  configJson: Record<string, unknown>,
): Promise<string> {
  const tenantId = await seedTenant(handle)
  const { log } = memoryLogger('warn')
  await connect(
    { db: handle.db, registry: connectorRegistry, keyring: keyringFromHex(TEST_KEY_HEX), log },
    { tenantId, connectorType, configJson, userId: 'test:runner' },
  )
  return tenantId
}

/**
 * A migrated database of its own on the test server, for worker processes whose startup sweep
 * (a schedule for every connection of every tenant) must not reach other test files' tenants.
 */
export function createIsolatedDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  return createDatabase({ prefix: 'gtm_iso', migrated: true })
}

/** Polls `check` until it returns a truthy value (which it returns) or the time is up. */
export async function waitFor<T>(
  check: () => Promise<T | undefined | null | false> | T | undefined | null | false,
  options: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 30_000)
  for (;;) {
    const value = await check()
    if (value) return value
    if (Date.now() > deadline) {
      throw new Error(`Timed out waiting for ${options.what ?? 'a condition'}`)
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 100))
  }
}

/** A worker process (`node --import tsx test/helpers/worker-entry.ts`) and its log lines. */
export interface WorkerProcess {
  child: ChildProcess
  output: () => string
  /** Resolves with the exit code (or signal name) once it ended. */
  exited: Promise<number | string>
  /** Resolves when it logged "worker started"; rejects if it exits first. */
  ready: Promise<void>
}

export function spawnWorkerProcess(env: Record<string, string>): WorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/worker-entry.ts'], {
    cwd: path.resolve(import.meta.dirname, '../..'),
    env: {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? os.homedir(),
      CONNECTOR_ENCRYPTION_KEY: TEST_KEY_HEX,
      DATABASE_URL: databaseUrl(),
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const { output, exited } = watchProcess(child)
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      if (output().includes('"msg":"worker started"')) {
        clearInterval(timer)
        resolve()
      }
    }, 50)
    void exited.then((code) => {
      clearInterval(timer)
      reject(
        new Error(
          `The worker process exited (${code}) before it started:\n${output().slice(-3000)}`,
        ),
      )
    })
  })
  // A rejection nobody awaits (the test already moved on) must not fail the run.
  ready.catch(() => undefined)
  return { child, output, exited, ready }
}

const quietBundlerLogger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: (message: string) => process.stderr.write(`${message}\n`),
}

/** Replays recorded workflow histories against the current workflow code; one result each. */
export async function replayHistories(
  env: Pick<TemporalTestEnv, 'workflowBundle'>,
  replayName: string,
  histories: Parameters<typeof Worker.runReplayHistories>[1],
): Promise<Array<{ workflowId: string; error: unknown }>> {
  const results: Array<{ workflowId: string; error: unknown }> = []
  for await (const result of Worker.runReplayHistories(
    { workflowBundle: env.workflowBundle, replayName },
    histories,
  )) {
    results.push({ workflowId: result.workflowId, error: result.error })
  }
  return results
}

/**
 * Replays a workflow's recorded runs against the current workflow code and expects each to
 * replay cleanly: every run from `firstRunId` on (following continue-as-new), or the latest
 * run without it. Returns how many runs were replayed.
 */
export async function expectReplays(
  env: Pick<TemporalTestEnv, 'client' | 'workflowBundle'>,
  workflow: { workflowId: string; firstRunId?: string | undefined },
): Promise<number> {
  const { workflowId, firstRunId } = workflow
  async function* histories() {
    let runId = firstRunId
    do {
      const history = await env.client.workflow.getHandle(workflowId, runId).fetchHistory()
      yield { workflowId, history }
      runId = firstRunId
        ? (history.events?.at(-1)?.workflowExecutionContinuedAsNewEventAttributes
            ?.newExecutionRunId ?? undefined)
        : undefined
    } while (runId)
  }
  const results = await replayHistories(env, `replay-${workflowId}`, histories())
  for (const result of results) {
    expect(result.error, `replaying ${result.workflowId}: ${String(result.error)}`).toBeUndefined()
  }
  expect(results.length, `the recorded runs of ${workflowId}`).toBeGreaterThan(0)
  return results.length
}
