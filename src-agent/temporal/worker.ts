/**
 * The agent's Temporal worker: runs the sync and writeback workflows and their activities,
 * against TEMPORAL_ADDRESS or the local dev server it starts itself, and reconciles the sync
 * schedules with the connections (at start, then every GTM_SCHEDULE_RECONCILE_SECONDS). Stops gracefully when its signal aborts (SIGINT/SIGTERM):
 * the worker first, then the dev server, then the database.
 */
import { existsSync, statSync } from 'node:fs'
import path from 'node:path'
import { setTimeout as delay } from 'node:timers/promises'
import {
  IllegalStateError,
  type LogLevel,
  type LogMetadata,
  type Logger as TemporalLogger,
} from '@temporalio/common'
import { NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker'
import { createDb } from '../../db/client.js'
import { ConfigError, describeError } from '../../shared/errors.js'
import { loadConnectorModules, openDatabase, type Env } from '../config.js'
import { connectorRegistry } from '../connectors/registry.js'
import { WORKFLOW_BUNDLE_PATH, WORKFLOWS_SOURCE_PATH } from '../layout.js'
import type { Logger } from '../logging/logger.js'
import { loadKeyring } from '../secrets/crypto.js'
import { createActivities, type Activities } from './activities.js'
import { connectTemporal, type TemporalSettings } from './client.js'
import type { WorkerOps } from './ops.js'
import { reconcileIntervalSeconds, reconcileSchedules, type ReconcileCounts } from './scheduler.js'

/**
 * Activities one worker runs at once; each holds up to three database connections (a sync: its
 * lock's session, the page being written and the next page, staged meanwhile).
 */
const MAX_CONCURRENT_ACTIVITIES = 4

export interface RunWorkerOptions {
  env?: Env
  log: Logger
  /** Aborting it shuts the worker down gracefully. */
  signal: AbortSignal
  /**
   * Called after every reconcile pass (the one at start, then one every interval) with its
   * counts, or undefined when the pass failed. Lets a caller wait for a pass instead of a time.
   */
  onReconciled?: (counts: ReconcileCounts | undefined) => void
  /** Told when the worker is up and when it stops: the readiness checks and metrics read it. */
  ops?: WorkerOps
  /**
   * Serve the Temporal SDK's own worker metrics (Prometheus) on this `host:port`. Takes effect
   * only when this is the first Temporal worker or connection of the process.
   */
  sdkMetricsAddress?: string
}

/** Runs the worker until `signal` aborts, then lets go of everything it started. */
export async function runWorker(options: RunWorkerOptions): Promise<void> {
  const env = options.env ?? process.env
  const log = options.log.child({ component: 'worker' })
  const installed = installRuntimeLogger(
    log,
    options.sdkMetricsAddress === undefined ? {} : { metricsAddress: options.sdkMetricsAddress },
  )
  if (options.sdkMetricsAddress !== undefined && !installed) {
    log.warn(
      { address: options.sdkMetricsAddress },
      'the Temporal runtime was set up before the worker: its own metrics are not served',
    )
  }
  const reconcileSeconds = reconcileIntervalSeconds(env)
  const keyring = loadKeyring(env)
  const workflows = workflowCode(log, env)
  await loadConnectorModules(env)
  const database = await openDatabase({ env, log })
  try {
    const temporal = await connectTemporal({ env, log, ownDevServer: true })
    try {
      const settings = temporal.settings
      const connection = await NativeConnection.connect(nativeOptions(settings))
      const activityDb = createDb(database.url, { max: MAX_CONCURRENT_ACTIVITIES * 3 + 2 })
      try {
        const worker = await createWorker({
          connection,
          namespace: settings.namespace,
          taskQueue: settings.taskQueue,
          activities: createActivities({
            handle: activityDb,
            keyring,
            registry: connectorRegistry,
            log,
          }),
          log,
          workflows,
        })
        const reconcile = async (): Promise<ReconcileCounts | undefined> => {
          let counts: ReconcileCounts | undefined
          try {
            counts = await reconcileSchedules({
              client: temporal.client,
              taskQueue: settings.taskQueue,
              handle: database.handle,
              registry: connectorRegistry,
              log,
            })
          } catch (err) {
            log.warn({ error: describeError(err) }, 'could not reconcile the sync schedules')
          }
          options.onReconciled?.(counts)
          return counts
        }
        const schedules = await reconcile()
        const loopStop = new AbortController()
        const stop = (): void => {
          log.info('shutting down the worker')
          options.ops?.detach()
          loopStop.abort()
          worker.shutdown()
        }
        if (options.signal.aborted) stop()
        else options.signal.addEventListener('abort', stop, { once: true })
        log.info(
          {
            address: settings.address,
            namespace: settings.namespace,
            taskQueue: settings.taskQueue,
            embeddedTemporal: temporal.embedded,
            reconcileSeconds,
            schedules,
            workflows: describeWorkflowCode(workflows),
          },
          'worker started',
        )
        const loop = reconcileLoop(reconcile, reconcileSeconds * 1000, loopStop.signal, log)
        options.ops?.attach({ handle: database.handle, client: temporal.client, worker })
        try {
          await worker.run()
        } finally {
          options.ops?.detach()
          // Also when the worker failed by itself; a pass in progress finishes first.
          loopStop.abort()
          await loop
          options.signal.removeEventListener('abort', stop)
        }
        log.info('worker stopped')
      } finally {
        await connection.close()
        await activityDb.close()
      }
    } finally {
      await temporal.close()
    }
  } finally {
    await database.close()
  }
}

/** Runs `pass` every `intervalMs` (counted from the end of the previous pass) until `signal` aborts. */
async function reconcileLoop(
  pass: () => Promise<ReconcileCounts | undefined>,
  intervalMs: number,
  signal: AbortSignal,
  log: Logger,
): Promise<void> {
  while (!signal.aborted) {
    try {
      await delay(intervalMs, undefined, { signal })
    } catch {
      return // aborted
    }
    const counts = await pass()
    if (!counts) continue
    const changed =
      counts.created +
      counts.updated +
      counts.paused +
      counts.resumed +
      counts.fullSyncs +
      counts.writebacks
    if (changed > 0 || counts.failed > 0)
      log.info({ schedules: counts }, 'reconciled the sync schedules')
    else log.debug({ schedules: counts }, 'reconciled the sync schedules')
  }
}

export interface CreateWorkerOptions {
  connection: NativeConnection
  namespace?: string
  taskQueue: string
  activities: Activities
  log: Logger
  /** Prebuilt workflow code (tests build it once); default: see `workflowCode`. */
  workflowBundle?: WorkerOptions['workflowBundle']
  /** What `workflowCode` chose, when the caller asked it already. */
  workflows?: WorkflowCode
}

/** A worker for our workflows and the given activities. */
export async function createWorker(options: CreateWorkerOptions): Promise<Worker> {
  installRuntimeLogger(options.log)
  const code =
    options.workflows ??
    (options.workflowBundle
      ? { workflowBundle: options.workflowBundle }
      : workflowCode(options.log))
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace ?? 'default',
    taskQueue: options.taskQueue,
    activities: options.activities,
    ...code,
    maxConcurrentActivityTaskExecutions: MAX_CONCURRENT_ACTIVITIES,
    // In-flight activities get this long to finish their page before they are cancelled;
    // a cancelled chunk is retried from its committed cursor by the next worker.
    shutdownGraceTime: '10 seconds',
  })
}

export type WorkflowCode = Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'>

/**
 * The prebuilt bundle: GTM_WORKFLOW_BUNDLE, else the one the build writes. From source it is used
 * when not older than workflows.ts, and the source is bundled at start otherwise; the built agent
 * has no workflow source, so its bundle must be there.
 */
export function workflowCode(log?: Logger, env: Env = process.env): WorkflowCode {
  const explicit = env.GTM_WORKFLOW_BUNDLE?.trim()
  const bundle = path.resolve(explicit || WORKFLOW_BUNDLE_PATH)
  const source = WORKFLOWS_SOURCE_PATH
  if (!source) {
    if (existsSync(bundle)) return { workflowBundle: { codePath: bundle } }
    throw new ConfigError(
      'config_invalid',
      explicit
        ? `GTM_WORKFLOW_BUNDLE names ${bundle}, which does not exist.`
        : `The workflow bundle ${bundle} is missing: rebuild the agent (npm run build:agent).`,
    )
  }
  if (existsSync(bundle)) {
    if (statSync(bundle).mtimeMs >= statSync(source).mtimeMs) {
      return { workflowBundle: { codePath: bundle } }
    }
    log?.warn({ bundle }, 'the workflow bundle is older than workflows.ts: bundling from source')
  }
  return { workflowsPath: source }
}

/** For the log: the bundle's path, or the source bundled at start. */
function describeWorkflowCode(code: WorkflowCode): string {
  if (code.workflowsPath) return `bundled from ${code.workflowsPath}`
  const bundle = code.workflowBundle
  return bundle && 'codePath' in bundle ? bundle.codePath : 'a prebuilt bundle'
}

function nativeOptions(settings: TemporalSettings & { address: string }) {
  return {
    address: settings.address,
    ...(settings.tls === undefined ? {} : { tls: settings.tls }),
    ...(settings.apiKey ? { apiKey: settings.apiKey } : {}),
  }
}

let runtimeInstalled = false

/**
 * Sends the SDK's own log lines (worker state, workflow `log`) through our redacting logger, and
 * serves the SDK's worker metrics in Prometheus format on `metricsAddress` (`host:port`) when
 * given. Takes effect only before the first NativeConnection or Worker of the process is created;
 * returns whether it did.
 */
export function installRuntimeLogger(
  log: Logger,
  options: { metricsAddress?: string } = {},
): boolean {
  if (runtimeInstalled) return false
  runtimeInstalled = true
  const sdkLog = log.child({ component: 'temporal' })
  const levels: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
    TRACE: 'trace',
    DEBUG: 'debug',
    INFO: 'info',
    WARN: 'warn',
    ERROR: 'error',
  }
  const write = (level: LogLevel, message: string, meta?: LogMetadata): void => {
    sdkLog[levels[level]](meta ? { ...meta } : {}, message)
  }
  const logger: TemporalLogger = {
    log: write,
    trace: (message, meta) => write('TRACE', message, meta),
    debug: (message, meta) => write('DEBUG', message, meta),
    info: (message, meta) => write('INFO', message, meta),
    warn: (message, meta) => write('WARN', message, meta),
    error: (message, meta) => write('ERROR', message, meta),
  }
  try {
    // Signals are the agent's to handle (takeOverShutdownSignals), not the SDK's.
    Runtime.install({
      logger,
      shutdownSignals: [],
      ...(options.metricsAddress === undefined
        ? {}
        : {
            telemetryOptions: {
              metrics: { prometheus: { bindAddress: options.metricsAddress } },
            },
          }),
    })
    return true
  } catch (err) {
    // Another part of this process created the runtime first; it keeps its logger.
    if (err instanceof IllegalStateError) return false
    throw new ConfigError(
      'config_invalid',
      `Cannot serve the Temporal worker metrics on ${options.metricsAddress ?? 'its address'}: ${describeError(err)}`,
      { cause: err },
    )
  }
}
