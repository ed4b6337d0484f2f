/**
 * Telling Temporal about changes made outside it (a connection made or dropped, writeback
 * items queued), but only when Temporal is already there: TEMPORAL_ADDRESS is set, or the data
 * directory's dev server is running. Nothing is started otherwise; the worker's reconcile pass
 * catches up when it runs. Temporal errors are thrown; nothing is printed.
 */
import type { DbHandle } from '../../db/client.js'
import { DEFAULT_SYNC_CRON, syncScheduleId } from '../../shared/temporal.js'
import { dataDir, openDatabase, type Env } from '../config.js'
import type { Logger } from '../logging/logger.js'
import { hasWorker, readTemporalSettings, schedulerDeps, withTemporal } from './client.js'
import { findRunningDevServer } from './dev-server.js'
import { describeSchedule, onConnected, onDisconnected } from './scheduler.js'
import { wakeWriteback } from './writeback.js'

export type ConnectionChangeResult =
  | {
      scheduled: true
      change: 'connected'
      scheduleId: string
      cron: string
      workflowId: string
      /** `already_running`: a sync of the connection was running and was left to finish. */
      sync: 'started' | 'already_running'
      full: boolean
      /** Whether a worker polls the task queue (else the sync waits for one). */
      workerRunning: boolean
    }
  | { scheduled: true; change: 'disconnected'; scheduleId: string; paused: boolean }
  | { scheduled: false; reason: string }

/**
 * Tells a running Temporal that a connection was made or dropped (onConnected / onDisconnected);
 * mutations are audited as `userId`. Uses `options.handle` for the database, else opens it.
 */
export async function notifyConnectionChange(
  caller: { env: Env; log: Logger; userId: string },
  input: { tenantId: string; connectorType: string; change: 'connected' | 'disconnected' },
  options: { handle?: DbHandle } = {},
): Promise<ConnectionChangeResult> {
  const env = await runningTemporal(caller.env)
  if (!env) return { scheduled: false, reason: NO_TEMPORAL }
  const target = { tenantId: input.tenantId, connectorType: input.connectorType }
  const run = async (handle: DbHandle): Promise<ConnectionChangeResult> =>
    withTemporal({ env, log: caller.log }, async (temporal) => {
      const deps = schedulerDeps(caller.userId, handle, temporal)
      const scheduleId = syncScheduleId(target.tenantId, target.connectorType)
      if (input.change === 'disconnected') {
        const paused = await onDisconnected(deps, target)
        return { scheduled: true, change: 'disconnected', scheduleId, paused }
      }
      const workerRunning = await hasWorker(temporal)
      const done = await onConnected(deps, target)
      const view = await describeSchedule(temporal.client, target)
      return {
        scheduled: true,
        change: 'connected',
        scheduleId: done.scheduleId,
        cron: view?.cron ?? DEFAULT_SYNC_CRON,
        workflowId: done.sync.workflowId,
        sync: done.sync.outcome,
        full: done.full,
        workerRunning,
      }
    })
  if (options.handle) return run(options.handle)
  const database = await openDatabase(caller)
  try {
    return await run(database.handle)
  } finally {
    await database.close()
  }
}

export type WritebackWakeResult =
  { woken: true; workflowId: string; workerRunning: boolean } | { woken: false; reason: string }

/** Wakes (or starts) the connection's writeback workflow after items were queued. */
export async function wakeWritebackIfRunning(
  caller: { env: Env; log: Logger },
  target: { tenantId: string; connectorType: string },
): Promise<WritebackWakeResult> {
  const env = await runningTemporal(caller.env)
  if (!env) return { woken: false, reason: NO_TEMPORAL }
  return withTemporal({ env, log: caller.log }, async (temporal) => {
    const workerRunning = await hasWorker(temporal)
    const workflowId = await wakeWriteback(
      { client: temporal.client, taskQueue: temporal.settings.taskQueue },
      target,
    )
    return { woken: true, workflowId, workerRunning }
  })
}

// --- implementation ---

const NO_TEMPORAL = 'TEMPORAL_ADDRESS is not set and no local Temporal dev server is running'

/**
 * The environment to reach Temporal with when it is already there (TEMPORAL_ADDRESS is set, or
 * the data directory's dev server is running), else undefined: nothing is started.
 */
async function runningTemporal(env: Env): Promise<Env | undefined> {
  const settings = await readTemporalSettings(env)
  if (settings.address) return env
  const running = await findRunningDevServer(dataDir(env))
  // Its address, so that a server stopping meanwhile is an error, not a new server.
  return running ? { ...env, TEMPORAL_ADDRESS: running.address } : undefined
}
