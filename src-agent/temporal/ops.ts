/**
 * What a running worker tells its operations endpoint: whether it is ready (database reachable,
 * migrations current, Temporal reachable, worker polling) and the state gauges read at scrape
 * time (lag, schedules, backlogs). The worker attaches its parts once they exist; until then,
 * and after it stops, it is not ready.
 */
import { Client, type Connection } from '@temporalio/client'
import type { Worker } from '@temporalio/worker'
import type { DbHandle } from '../../db/client.js'
import { probeDatabase } from '../../db/probe.js'
import { withDeadline } from '../../shared/deadline.js'
import { describeError } from '../../shared/errors.js'
import { scrubString } from '../../shared/redact.js'
import { TASK_QUEUE } from '../../shared/temporal.js'
import type { Env } from '../config.js'
import type { Logger } from '../logging/logger.js'
import {
  lagSeconds,
  readConnectionsOverview,
  scheduleIntervalSeconds,
} from '../services/operations.js'
import { schemaVersion } from '../services/views.js'
import type { CheckResult, ReadinessReport } from '../telemetry/server.js'
import type { StateSnapshot } from '../telemetry/state-gauges.js'
import { connectIfRunning, TemporalUnreachable } from './probe.js'
import { listSchedules, type ScheduleView } from './scheduler.js'

/** Each readiness check (and each scrape-time read) gives up after this long. */
export const OPS_CHECK_TIMEOUT_MS = 2_000

/** Schedules are read from Temporal at most this often for the metrics. */
const SCHEDULES_MAX_AGE_MS = 60_000

export interface WorkerParts {
  handle: DbHandle
  client: Client
  worker: Worker
}

export interface WorkerOps {
  /** The worker is up: its parts can be checked. */
  attach(parts: WorkerParts): void
  /** The worker is stopping: it is no longer ready. */
  detach(): void
  readiness(): Promise<ReadinessReport>
  snapshot(): Promise<StateSnapshot>
}

export function createWorkerOps(options: { log: Logger; now?: () => Date }): WorkerOps {
  let parts: WorkerParts | undefined
  let schedules: { at: number; views: Map<string, ScheduleView> } | undefined
  const now = options.now ?? (() => new Date())

  const scheduleViews = async (client: Client): Promise<Map<string, ScheduleView>> => {
    if (schedules && Date.now() - schedules.at < SCHEDULES_MAX_AGE_MS) return schedules.views
    try {
      const views = await withDeadline(listSchedules(client), OPS_CHECK_TIMEOUT_MS * 5)
      schedules = {
        at: Date.now(),
        views: new Map(views.map((v) => [`${v.tenantId}:${v.connectorType}`, v])),
      }
    } catch (err) {
      options.log.debug({ error: describeError(err) }, 'could not read the schedules for metrics')
    }
    return schedules?.views ?? new Map()
  }

  return {
    attach: (next) => {
      parts = next
    },
    detach: () => {
      parts = undefined
    },
    readiness: async () => {
      const current = parts
      if (!current) {
        const starting = { ok: false, error: 'the worker is not running (starting or stopping)' }
        return {
          ready: false,
          checks: {
            database: starting,
            migrations: starting,
            temporal: starting,
            worker: starting,
          },
        }
      }
      const [database, temporal] = await Promise.all([
        checkDatabase(current.handle),
        checkTemporal(current.client),
      ])
      const migrations = database.ok
        ? await checkMigrations(current.handle)
        : { ok: false, error: 'not checked: the database is not reachable' }
      const worker = checkWorker(current.worker)
      const checks = { database, migrations, temporal, worker }
      return { ready: Object.values(checks).every((c) => c.ok), checks }
    },
    snapshot: async () => {
      const current = parts
      const workerRunning = current?.worker.getState() === 'RUNNING'
      if (!current) return { databaseUp: false, workerRunning, connections: [] }
      let overview
      try {
        overview = await withDeadline(
          readConnectionsOverview(current.handle),
          OPS_CHECK_TIMEOUT_MS * 5,
        )
      } catch (err) {
        options.log.debug(
          { error: describeError(err) },
          'could not read the connections for metrics',
        )
        return { databaseUp: false, workerRunning, connections: [] }
      }
      const views = await scheduleViews(current.client)
      const at = now()
      const secondsSince = (d: Date | null): number | null =>
        d === null ? null : Math.max(0, Math.round((at.getTime() - d.getTime()) / 1000))
      return {
        databaseUp: true,
        workerRunning,
        connections: overview.map((c) => {
          const view = views.get(`${c.tenantId}:${c.connectorType}`)
          return {
            tenant: c.tenantId,
            connector: c.connectorType,
            status: c.status,
            needsReauth: c.needsReauth,
            lagSeconds: lagSeconds(c, at),
            scheduleIntervalSeconds: view ? scheduleIntervalSeconds(view.cron, at) : null,
            schedulePaused: view ? view.paused : null,
            writebacksPending: c.writebacks.pending,
            writebacksFailed: c.writebacks.failed,
            writebacksOldestDueSeconds: secondsSince(c.writebacks.oldestDueAt),
            webhooksPending: c.webhooks.pending,
            webhooksFailed: c.webhooks.failed,
            webhooksOldestPendingSeconds: secondsSince(c.webhooks.oldestPendingAt),
          }
        }),
      }
    },
  }
}

// --- implementation ---

async function checkDatabase(handle: DbHandle): Promise<CheckResult> {
  const probe = await probeDatabase(handle.pool, { timeoutMs: OPS_CHECK_TIMEOUT_MS })
  return probe.reachable ? { ok: true } : { ok: false, error: probe.error ?? 'not reachable' }
}

async function checkMigrations(handle: DbHandle): Promise<CheckResult> {
  try {
    const { applied, shipped } = await withDeadline(schemaVersion(handle), OPS_CHECK_TIMEOUT_MS)
    if (applied >= shipped) return { ok: true }
    return {
      ok: false,
      error: `the database has ${applied} of the ${shipped} migrations this agent needs: run gtm-agent migrate`,
    }
  } catch (err) {
    return { ok: false, error: scrubString(describeError(err)) }
  }
}

async function checkTemporal(client: Client): Promise<CheckResult> {
  try {
    await withDeadline(
      client.connection.withDeadline(Date.now() + OPS_CHECK_TIMEOUT_MS, () =>
        client.workflowService.getSystemInfo({}),
      ),
      OPS_CHECK_TIMEOUT_MS + 500,
    )
    return { ok: true }
  } catch (err) {
    return { ok: false, error: `Temporal did not answer: ${scrubString(describeError(err))}` }
  }
}

function checkWorker(worker: Worker): CheckResult {
  const state = worker.getState()
  return state === 'RUNNING'
    ? { ok: true }
    : { ok: false, error: `the worker is ${state.toLowerCase()}, not polling its task queue` }
}

/** What `gtm-agent status` learns from Temporal. */
export interface TemporalStatus {
  reachable: boolean
  address: string
  namespace: string
  taskQueue: string
  /** Workers polling the task queue for workflow tasks; null when Temporal could not be asked. */
  workers: number | null
  /** The connection schedules by `tenant:type`; empty when Temporal could not be asked. */
  schedules: Map<string, ScheduleView>
  error: string | null
}

/**
 * Asks TEMPORAL_ADDRESS, or the data directory's dev server when it runs (nothing is started),
 * within `timeoutMs` per call: is it there, how many workers poll the task queue, which
 * schedules it holds. Never throws.
 */
export async function readTemporalStatus(env: Env, timeoutMs: number): Promise<TemporalStatus> {
  const status: TemporalStatus = {
    reachable: false,
    address: env.TEMPORAL_ADDRESS?.trim() || 'local dev server',
    namespace: env.TEMPORAL_NAMESPACE?.trim() || 'default',
    taskQueue: env.TEMPORAL_TASK_QUEUE?.trim() || TASK_QUEUE,
    workers: null,
    schedules: new Map(),
    error: null,
  }
  let connection: Connection | undefined
  try {
    const reached = await connectIfRunning(env, timeoutMs)
    const { settings } = reached
    connection = reached.connection
    status.address = reached.address
    status.namespace = settings.namespace
    status.taskQueue = settings.taskQueue
    const open = connection
    const client = new Client({ connection: open, namespace: settings.namespace })
    await open.withDeadline(Date.now() + timeoutMs, () => open.workflowService.getSystemInfo({}))
    status.reachable = true
    const queue = await open.withDeadline(Date.now() + timeoutMs, () =>
      open.workflowService.describeTaskQueue({
        namespace: settings.namespace,
        taskQueue: { name: settings.taskQueue },
        taskQueueType: 1, // TASK_QUEUE_TYPE_WORKFLOW
      }),
    )
    status.workers = (queue.pollers ?? []).length
    const views = await withDeadline(listSchedules(client), timeoutMs * 5)
    status.schedules = new Map(views.map((v) => [`${v.tenantId}:${v.connectorType}`, v]))
  } catch (err) {
    status.error =
      err instanceof TemporalUnreachable
        ? err.message
        : `Temporal at ${status.address}: ${scrubString(describeError(err))}`
  } finally {
    await connection?.close().catch(() => undefined)
  }
  return status
}
