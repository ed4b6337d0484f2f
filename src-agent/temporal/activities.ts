/**
 * The Temporal activities: thin wrappers over the sync pipeline (startRun, runPages in chunks,
 * finishRun, failRun) and the writeback sender. Records never leave an activity: only ids,
 * cursors and counts travel through workflow history. Errors are translated for Temporal here:
 * what trying again cannot fix becomes a non-retryable failure, throttling carries the
 * vendor's Retry-After as the next retry delay.
 */
import { activityInfo, cancellationSignal, heartbeat } from '@temporalio/activity'
import { ApplicationFailure } from '@temporalio/common'
import { eq } from 'drizzle-orm'
import type { DbHandle } from '../../db/client.js'
import { postgresError } from '../../db/errors.js'
import { syncRuns } from '../../db/schema/index.js'
import { withTenant } from '../../db/tenant.js'
import { AppError, VendorError, retryableCodes, type ErrorCode } from '../../shared/errors.js'
import type { SyncMode } from '../../shared/schemas.js'
import type { ConnectorRegistry } from '../connectors/registry.js'
import { findStream, streamsOf } from '../connectors/streams.js'
import type { Logger } from '../logging/logger.js'
import { scrubString } from '../../shared/redact.js'
import {
  failRun,
  finishRun,
  runPages,
  startRun,
  type SyncCounts,
  type SyncDeps,
} from '../pipeline/run-sync.js'
import { withSyncLock } from '../pipeline/sync-lock.js'
import type { Keyring } from '../secrets/crypto.js'
import {
  sendWritebackBatch,
  type WritebackBatchInput,
  type WritebackBatchResult,
} from '../pipeline/writeback/send.js'

export interface ActivityDeps {
  handle: DbHandle
  keyring: Keyring
  registry: ConnectorRegistry
  log: Logger
}

export interface RunRef {
  tenantId: string
  connectorType: string
  runId: string
}

export interface StartSyncRunInput {
  tenantId: string
  connectorType: string
  stream: string
  partition?: string
  full?: boolean
  /** Who asked for the run (audit log): `schedule`, `cli:<user>`, `system`. */
  triggeredBy: string
}

export interface SyncChunkInput extends RunRef {
  /** Pages to commit before handing control back to the workflow. */
  maxPages: number
  pageSize?: number
}

export interface SyncChunkResult {
  done: boolean
  /** The run's totals so far, read from its sync_runs row (exact across activity retries). */
  totals: SyncCounts
}

/** Progress a chunk reports with each heartbeat. */
export interface ChunkHeartbeat {
  cursor: string | null
  pages: number
}

export interface SyncFailureInput extends RunRef {
  /** The failure's error code (the ApplicationFailure type). */
  code: string
  message: string
  retryable: boolean
}

export interface SyncFailureResult {
  status: 'failed' | 'paused'
  code: string
  message: string
  totals: SyncCounts
}

/** The activities a worker registers, over real dependencies (tests pass their own). */
export function createActivities(deps: ActivityDeps) {
  const syncDeps = (userId: string): SyncDeps => ({ ...deps, userId })
  return {
    /** The streams a sync reads: the one asked for (checked), or every stream in order. */
    planSyncStreams(input: {
      tenantId: string
      connectorType: string
      stream?: string
    }): Promise<Array<{ id: string; name: string }>> {
      try {
        const connector = deps.registry.get(input.connectorType)
        const streams = input.stream ? [findStream(connector, input.stream)] : streamsOf(connector)
        return Promise.resolve(streams.map((s) => ({ id: s.id, name: s.name })))
      } catch (err) {
        throw toApplicationFailure(err)
      }
    },

    /** Opens the run's sync_runs row; taken under the connection's sync lock. */
    async startSyncRun(input: StartSyncRunInput): Promise<{ runId: string; mode: SyncMode }> {
      const { tenantId, connectorType } = input
      try {
        return await withSyncLock(deps.handle, tenantId, connectorType, () =>
          keepingAlive(async () => {
            const run = await startRun(syncDeps(input.triggeredBy), {
              tenantId,
              connectorType,
              stream: input.stream,
              ...(input.partition !== undefined ? { partition: input.partition } : {}),
              ...(input.full ? { full: true } : {}),
            })
            return { runId: run.runId, mode: run.mode }
          }),
        )
      } catch (err) {
        throw toApplicationFailure(err)
      }
    },

    /**
     * Commits up to `maxPages` pages from the connection's committed cursor, heartbeating the
     * cursor after each page and on a timer (a slow vendor page is not a dead worker). A retried
     * attempt resumes from the last committed page, so nothing is fetched twice into the tables.
     */
    async syncChunk(input: SyncChunkInput): Promise<SyncChunkResult> {
      const { tenantId, connectorType, runId } = input
      const info = activityInfo()
      const signal = cancellationSignal()
      const previous = info.heartbeatDetails as ChunkHeartbeat | undefined
      if (info.attempt > 1) {
        deps.log.info(
          { tenantId, connector: connectorType, runId, attempt: info.attempt, ...previous },
          'retrying a sync chunk from the committed cursor',
        )
      }
      let progress: ChunkHeartbeat = { cursor: previous?.cursor ?? null, pages: 0 }
      const beat = (): void => heartbeat(progress)
      beat()
      const timer = setInterval(beat, heartbeatEvery(info.heartbeatTimeoutMs))
      const chunkLog = deps.log.child({ tenantId, connector: connectorType, runId })
      try {
        return await withSyncLock(deps.handle, tenantId, connectorType, async () => {
          // Both lines are written while the connection's sync lock is held: in the logs of all
          // the workers together, one connection's chunks never overlap.
          chunkLog.info({ attempt: info.attempt }, 'sync chunk started')
          let outcome: 'done' | 'more' | 'failed' = 'failed'
          try {
            const result = await runPages(syncDeps('system'), {
              tenantId,
              connectorType,
              runId,
              maxPages: input.maxPages,
              signal,
              ...(input.pageSize ? { pageSize: input.pageSize } : {}),
              onPage: (page) => {
                progress = { cursor: page.cursor, pages: progress.pages + 1 }
                beat()
              },
            })
            outcome = result.done ? 'done' : 'more'
            return { done: result.done, totals: await runTotals(deps.handle, tenantId, runId) }
          } finally {
            chunkLog.info(
              { attempt: info.attempt, pages: progress.pages, outcome },
              'sync chunk ended',
            )
          }
        })
      } catch (err) {
        if (signal.aborted && signal.reason instanceof Error) throw signal.reason
        throw toApplicationFailure(err)
      } finally {
        clearInterval(timer)
      }
    },

    /** Marks the run succeeded and the connection connected; returns the run's totals. */
    async finishSyncRun(input: RunRef): Promise<SyncCounts> {
      try {
        return await keepingAlive(() => finishRun(syncDeps('system'), input))
      } catch (err) {
        throw toApplicationFailure(err)
      }
    },

    /**
     * Records the final failure of a run (after its retries, or a non-retryable one): the run's
     * row gets its outcome and readable error, the connection what it needs (re-auth, or
     * nothing for a quota pause).
     */
    async recordSyncFailure(input: SyncFailureInput): Promise<SyncFailureResult> {
      try {
        return await keepingAlive(async () => {
          const outcome = await failRun(syncDeps('system'), input, rebuildError(input))
          return {
            status: outcome.runStatus,
            code: outcome.code,
            message: outcome.message,
            totals: await runTotals(deps.handle, input.tenantId, input.runId),
          }
        })
      } catch (err) {
        throw toApplicationFailure(err)
      }
    },

    /** Sends one batch of due writeback items and records each item's outcome. */
    async sendWritebackBatch(input: WritebackBatchInput): Promise<WritebackBatchResult> {
      try {
        // Failures stay in the queue rows: only counts travel through workflow history.
        // The workflow (one per connection) sends one batch at a time, so what it claimed in an
        // attempt that died (its worker killed) is its own to send again at once.
        const claimant = activityInfo().workflowExecution?.workflowId
        const { failures: _failures, ...result } = await keepingAlive(() =>
          sendWritebackBatch(deps, {
            ...input,
            ...(claimant ? { claimant } : {}),
            signal: cancellationSignal(),
          }),
        )
        return result
      } catch (err) {
        throw toApplicationFailure(err)
      }
    },
  }
}

export type Activities = ReturnType<typeof createActivities>

/** A thrown error as Temporal should see it: its code as the type, a message safe to store. */
export function toApplicationFailure(err: unknown): ApplicationFailure {
  if (err instanceof ApplicationFailure) return err
  if (err instanceof AppError) {
    const message = scrubString(err.userMessage)
    const retryable =
      err instanceof VendorError
        ? err.retryable && err.code !== 'vendor_quota_exhausted'
        : retryableCodes[err.code]
    return ApplicationFailure.create({
      message,
      type: err.code,
      nonRetryable: !retryable,
      ...(err instanceof VendorError && err.retryAfterMs !== undefined
        ? { nextRetryDelay: Math.max(1, Math.ceil(err.retryAfterMs)) }
        : {}),
    })
  }
  // Anything else (a dropped database connection, a socket error) is worth another attempt.
  // Only the server's message is kept: a driver's message may quote query parameters.
  return ApplicationFailure.create({
    message: scrubString(postgresError(err).message),
    type: 'internal',
    nonRetryable: false,
  })
}

/** The error a failure stood for, rebuilt from its code so failRun classifies it the same way. */
function rebuildError(input: SyncFailureInput): AppError {
  const code = isErrorCode(input.code) ? input.code : 'internal'
  return code.startsWith('vendor_')
    ? new VendorError(code, input.message, { retryable: input.retryable })
    : new AppError(code, input.message)
}

function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(retryableCodes, code)
}

async function runTotals(handle: DbHandle, tenantId: string, runId: string): Promise<SyncCounts> {
  const [run] = await withTenant(handle.db, tenantId, (tx) =>
    tx
      .select({
        pages: syncRuns.pages,
        created: syncRuns.created,
        updated: syncRuns.updated,
        deleted: syncRuns.deleted,
        errors: syncRuns.errors,
      })
      .from(syncRuns)
      .where(eq(syncRuns.id, runId)),
  )
  if (!run) throw new AppError('internal', `Sync run ${runId} does not exist.`)
  return run
}

/**
 * Runs a step of a sync (or a writeback batch) while heartbeating on a timer, when the workflow
 * gave it a heartbeat timeout: a worker that dies in the step (killed, its machine lost) is noticed within that
 * timeout and the step retried on another worker, not after the whole start-to-close timeout.
 */
async function keepingAlive<T>(fn: () => Promise<T>): Promise<T> {
  const timeoutMs = activityInfo().heartbeatTimeoutMs
  if (!timeoutMs) return fn()
  heartbeat()
  const timer = setInterval(() => heartbeat(), heartbeatEvery(timeoutMs))
  try {
    return await fn()
  } finally {
    clearInterval(timer)
  }
}

/** Heartbeats are throttled by the SDK; beating a few times per timeout keeps a slow page alive. */
function heartbeatEvery(heartbeatTimeoutMs: number | undefined): number {
  return Math.max(500, Math.floor((heartbeatTimeoutMs ?? 30_000) / 4))
}
