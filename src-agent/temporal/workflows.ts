/**
 * Workflows. They run in Temporal's deterministic sandbox: no I/O, no clock, no Node; every
 * effect is an activity. Only ids, cursors and counts pass through here, never records.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  ChildWorkflowFailure,
  ParentClosePolicy,
  TimeoutFailure,
  WorkflowIdReusePolicy,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  isCancellation,
  log,
  proxyActivities,
  setHandler,
  startChild,
  workflowInfo,
} from '@temporalio/workflow'
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common'
import type { SyncMode } from '../../shared/schemas.js'
import { WRITEBACK_RETRY, syncWorkflowId, type SyncWorkflowPhase } from '../../shared/temporal.js'
import type { SyncCounts } from '../pipeline/run-sync.js'
import type { Activities, RunRef } from './activities.js'

// --- sync ---

/** Knobs of one sync; the defaults suit production, tests shrink them. */
export interface SyncTuning {
  /** Pages one activity commits before reporting back to the workflow (default 10). */
  pagesPerChunk?: number
  /** Chunks one workflow run handles before it continues as new (default 100). */
  chunksPerRun?: number
  /** Records per page to ask the source for (default: the connector's). */
  pageSize?: number
  /** Silence after which a chunk's worker is presumed dead and the chunk retried (default 30 s). */
  heartbeatTimeoutMs?: number
  /** Attempts of one step before the run is recorded as failed (default 8). */
  maxAttempts?: number
  /** First retry delay, doubling up to two minutes (default 1 s). */
  initialRetryMs?: number
}

export interface SyncWorkflowInput {
  tenantId: string
  connectorType: string
  /** Read everything instead of resuming from the stored cursor. */
  full?: boolean
  /** Who asked (audit log): `schedule`, `cli:<user>`, `system`. */
  triggeredBy?: string
  tuning?: SyncTuning
  /** Set when the workflow continued as new: the run in progress. */
  resume?: { runId: string; mode: SyncMode; chunks: number; totals: SyncCounts }
}

export interface SyncWorkflowResult extends SyncCounts {
  runId: string
  status: 'succeeded' | 'paused'
  mode: SyncMode
  chunks: number
  error?: string
  errorCode?: string
}

/** Details of the failure a failed sync workflow ends with. */
export interface SyncWorkflowFailure extends SyncCounts {
  runId: string
  status: 'failed'
  mode: SyncMode
  chunks: number
  error: string
  errorCode: string
}

export interface SyncProgressView extends SyncCounts {
  phase: SyncWorkflowPhase
  runId: string | null
  mode: SyncMode | null
  chunks: number
  error?: string
}

/** The phase and running counts of a sync (counts advance once per committed chunk). */
export const syncProgressQuery = defineQuery<SyncProgressView>('syncProgress')

/**
 * Syncs one connection: opens a run, then commits chunks of pages until the source has no
 * more, then closes the run. A chunk that fails is retried by Temporal (from the committed
 * cursor); when retries run out, or the failure is final (bad credentials), the run is recorded
 * as failed and the workflow fails with its readable error. An exhausted quota pauses the run.
 */
export async function syncConnector(input: SyncWorkflowInput): Promise<SyncWorkflowResult> {
  const tuning = resolveTuning(input.tuning)
  const steps = proxyActivities<Activities>({
    startToCloseTimeout: '2 minutes',
    retry: retryPolicy(tuning),
  })
  const chunks = proxyActivities<Activities>({
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: tuning.heartbeatTimeoutMs,
    retry: retryPolicy(tuning),
  })
  const { tenantId, connectorType } = input
  const progress: SyncProgressView = {
    phase: input.resume ? 'syncing' : 'authenticating',
    runId: input.resume?.runId ?? null,
    mode: input.resume?.mode ?? null,
    chunks: input.resume?.chunks ?? 0,
    ...(input.resume?.totals ?? zeroCounts()),
  }
  setHandler(syncProgressQuery, () => ({ ...progress }))

  const run = input.resume ?? (await openRun(steps, input, tuning.maxAttempts))
  progress.runId = run.runId
  progress.mode = run.mode
  progress.phase = 'syncing'
  const ref: RunRef = { tenantId, connectorType, runId: run.runId }

  try {
    let chunksThisRun = 0
    for (;;) {
      const chunk = await chunks.syncChunk({
        ...ref,
        maxPages: tuning.pagesPerChunk,
        ...(tuning.pageSize ? { pageSize: tuning.pageSize } : {}),
      })
      run.chunks += 1
      run.totals = chunk.totals
      chunksThisRun += 1
      Object.assign(progress, chunk.totals, { chunks: run.chunks })
      if (chunk.done) break
      if (chunksThisRun >= tuning.chunksPerRun || workflowInfo().continueAsNewSuggested) {
        // continueAsNew throws ContinueAsNew, which the catch below passes through.
        return await continueAsNew<typeof syncConnector>({ ...input, resume: run })
      }
    }
    progress.phase = 'finalizing'
    const totals = await steps.finishSyncRun(ref)
    Object.assign(progress, totals, { phase: 'complete' })
    return { runId: run.runId, status: 'succeeded', mode: run.mode, chunks: run.chunks, ...totals }
  } catch (err) {
    if (isCancellation(err)) {
      await CancellationScope.nonCancellable(() =>
        steps.recordSyncFailure({
          ...ref,
          code: 'internal',
          message: 'The sync was cancelled.',
          retryable: true,
        }),
      )
      throw err
    }
    if (!(err instanceof ActivityFailure)) throw err
    const failure = describeFailure(err, tuning.maxAttempts)
    const recorded = await steps.recordSyncFailure({ ...ref, ...failure })
    Object.assign(progress, recorded.totals, { error: recorded.message })
    const summary = {
      runId: run.runId,
      mode: run.mode,
      chunks: run.chunks,
      ...recorded.totals,
      error: recorded.message,
      errorCode: recorded.code,
    }
    if (recorded.status === 'paused') {
      // An exhausted quota ends the run cleanly; the next run resumes from the cursor.
      progress.phase = 'complete'
      return { ...summary, status: 'paused' }
    }
    progress.phase = 'failed'
    const details: SyncWorkflowFailure = { ...summary, status: 'failed' }
    throw ApplicationFailure.create({
      message: recorded.message,
      type: recorded.code,
      nonRetryable: true,
      details: [details],
    })
  }
}

// --- launcher ---

export interface LaunchSyncInput {
  tenantId: string
  connectorType: string
  full?: boolean
  triggeredBy?: string
  tuning?: SyncTuning
}

export interface LaunchSyncResult {
  /** `skipped`: a sync of the connection was already running, so this launch did nothing. */
  outcome: 'succeeded' | 'paused' | 'failed' | 'skipped'
  workflowId: string
  runId?: string
  error?: string
}

/**
 * What a schedule starts: the connection's sync under its fixed workflow id, as a child that
 * outlives this launcher (ABANDON). If that sync is already running, the launch is skipped.
 */
export async function launchSync(input: LaunchSyncInput): Promise<LaunchSyncResult> {
  const workflowId = syncWorkflowId(input.tenantId, input.connectorType)
  let child
  try {
    child = await startChild(syncConnector, {
      workflowId,
      args: [
        {
          tenantId: input.tenantId,
          connectorType: input.connectorType,
          triggeredBy: input.triggeredBy ?? 'schedule',
          ...(input.full ? { full: true } : {}),
          ...(input.tuning ? { tuning: input.tuning } : {}),
        },
      ],
      parentClosePolicy: ParentClosePolicy.ABANDON,
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
    })
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      log.info('sync already running; launch skipped', { workflowId })
      return {
        outcome: 'skipped',
        workflowId,
        error: 'A sync of this connection is already running.',
      }
    }
    throw err
  }
  try {
    const result = await child.result()
    return {
      outcome: result.status,
      workflowId,
      runId: result.runId,
      ...(result.error ? { error: result.error } : {}),
    }
  } catch (err) {
    if (!(err instanceof ChildWorkflowFailure)) throw err
    return { outcome: 'failed', workflowId, error: err.cause?.message ?? err.message }
  }
}

// --- writeback ---

export interface WritebackInput {
  tenantId: string
  connectorType: string
  /** Attempts before an item that keeps failing transiently is failed (default 5). */
  maxAttempts?: number
  /** First backoff of a transiently failed item, doubling per attempt (default 30 s). */
  retryBaseMs?: number
  /** With nothing queued for this long, the workflow ends; the next enqueue starts it (default 10 min). */
  idleTimeoutMs?: number
  /** Carried over continueAsNew. */
  totals?: WritebackTotals
}

export interface WritebackTotals {
  sent: number
  failed: number
  batches: number
}

export interface WritebackProgressView extends WritebackTotals {
  phase: 'writing' | 'waiting' | 'idle' | 'failed'
  retrying: number
}

/** Sent by enqueueWriteback (with signal-with-start) after it queued items. */
export const writebackEnqueuedSignal = defineSignal('writebackEnqueued')
export const writebackProgressQuery = defineQuery<WritebackProgressView>('writebackProgress')

/**
 * Drains a connection's writeback queue in batches. Items that failed transiently are retried
 * after their backoff; the workflow sleeps until the next one is due or a signal says more were
 * queued, and ends after being idle for a while.
 */
export async function writeback(input: WritebackInput): Promise<WritebackTotals> {
  const { tenantId, connectorType } = input
  const acts = proxyActivities<Activities>({
    startToCloseTimeout: '5 minutes',
    retry: {
      initialInterval: '1s',
      backoffCoefficient: 2,
      maximumInterval: '5m',
      maximumAttempts: 10,
    },
  })
  const progress: WritebackProgressView = {
    phase: 'writing',
    retrying: 0,
    ...(input.totals ?? { sent: 0, failed: 0, batches: 0 }),
  }
  let woken = false
  setHandler(writebackEnqueuedSignal, () => {
    woken = true
  })
  setHandler(writebackProgressQuery, () => ({ ...progress }))
  const totals = (): WritebackTotals => ({
    sent: progress.sent,
    failed: progress.failed,
    batches: progress.batches,
  })

  let batchesThisRun = 0
  for (;;) {
    woken = false
    progress.phase = 'writing'
    let result
    try {
      result = await acts.sendWritebackBatch({
        tenantId,
        connectorType,
        maxAttempts: input.maxAttempts ?? WRITEBACK_RETRY.maxAttempts,
        retryBaseMs: input.retryBaseMs ?? WRITEBACK_RETRY.retryBaseMs,
      })
    } catch (err) {
      if (!(err instanceof ActivityFailure)) throw err
      progress.phase = 'failed'
      // Queued items stay pending; the next enqueue (after a reconnect) starts a new workflow.
      const failure = describeFailure(err, 10)
      throw ApplicationFailure.create({
        message: failure.message,
        type: failure.code,
        nonRetryable: true,
      })
    }
    batchesThisRun += 1
    progress.sent += result.sent
    progress.failed += result.failed
    progress.retrying = result.retrying
    if (result.sent + result.failed + result.retrying > 0) progress.batches += 1
    if (batchesThisRun >= 200 || workflowInfo().continueAsNewSuggested) {
      return await continueAsNew<typeof writeback>({ ...input, totals: totals() })
    }
    if (result.moreDue) continue
    if (result.nextDueInMs !== null) {
      progress.phase = 'waiting'
      await condition(() => woken, Math.max(100, result.nextDueInMs))
      continue
    }
    progress.phase = 'idle'
    if (!(await condition(() => woken, input.idleTimeoutMs ?? 10 * 60_000))) return totals()
  }
}

// --- helpers ---

/** Starts the run's sync_runs row; a failure here (no connection) has no run to record it on. */
async function openRun(
  steps: Pick<Activities, 'startSyncRun'>,
  input: SyncWorkflowInput,
  maxAttempts: number,
): Promise<NonNullable<SyncWorkflowInput['resume']>> {
  try {
    const { runId, mode } = await steps.startSyncRun({
      tenantId: input.tenantId,
      connectorType: input.connectorType,
      triggeredBy: input.triggeredBy ?? 'system',
      ...(input.full ? { full: true } : {}),
    })
    return { runId, mode, chunks: 0, totals: zeroCounts() }
  } catch (err) {
    if (!(err instanceof ActivityFailure)) throw err
    const failure = describeFailure(err, maxAttempts)
    throw ApplicationFailure.create({
      message: failure.message,
      type: failure.code,
      nonRetryable: true,
    })
  }
}

function resolveTuning(tuning: SyncTuning = {}): Required<Omit<SyncTuning, 'pageSize'>> & {
  pageSize?: number
} {
  return {
    pagesPerChunk: tuning.pagesPerChunk ?? 10,
    chunksPerRun: tuning.chunksPerRun ?? 100,
    heartbeatTimeoutMs: tuning.heartbeatTimeoutMs ?? 30_000,
    maxAttempts: tuning.maxAttempts ?? 8,
    initialRetryMs: tuning.initialRetryMs ?? 1_000,
    ...(tuning.pageSize ? { pageSize: tuning.pageSize } : {}),
  }
}

function retryPolicy(tuning: { maxAttempts: number; initialRetryMs: number }) {
  return {
    initialInterval: tuning.initialRetryMs,
    backoffCoefficient: 2,
    maximumInterval: '2 minutes',
    maximumAttempts: tuning.maxAttempts,
  }
}

function zeroCounts(): SyncCounts {
  return { pages: 0, created: 0, updated: 0, deleted: 0, errors: 0 }
}

/** The code, readable message and retryability of an activity's final failure. */
function describeFailure(
  err: ActivityFailure,
  maxAttempts: number,
): { code: string; message: string; retryable: boolean } {
  const cause = err.cause
  const exhausted = err.retryState === 'MAXIMUM_ATTEMPTS_REACHED'
  const suffix = exhausted ? ` Gave up after ${maxAttempts} attempts.` : ''
  if (cause instanceof ApplicationFailure) {
    return {
      code: cause.type ?? 'internal',
      message: `${cause.message}${suffix}`,
      retryable: !cause.nonRetryable,
    }
  }
  if (cause instanceof TimeoutFailure) {
    return {
      code: 'internal',
      message: `A sync step timed out (${cause.timeoutType ?? 'timeout'}): the agent's worker may have stopped.${suffix}`,
      retryable: true,
    }
  }
  return { code: 'internal', message: `${cause?.message ?? err.message}${suffix}`, retryable: true }
}
