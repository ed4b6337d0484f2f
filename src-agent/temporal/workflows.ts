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
import { WorkflowExecutionAlreadyStartedError, type RetryPolicy } from '@temporalio/common'
import type { SyncMode } from '../../shared/schemas.js'
import { endsWholeSync, syncFailureMessage } from '../../shared/errors.js'
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
  /** Read only this stream (default: every stream of the connector, in its order). */
  stream?: string
  /** Read only this partition of the stream. */
  partition?: string
  /** Read everything instead of resuming from the stored cursors. */
  full?: boolean
  /** Who asked (audit log): `schedule`, `cli:<user>`, `system`. */
  triggeredBy?: string
  tuning?: SyncTuning
  /** Set when the workflow continued as new: where the sync stands. */
  resume?: SyncState
}

/** Where a sync stands: the streams to read, those done, and the run of the current one. */
export interface SyncState {
  streams: Array<{ id: string; name: string }>
  /** Index in `streams` of the stream being read. */
  index: number
  /** The current stream's run, once opened. */
  run: { runId: string; mode: SyncMode; chunks: number; totals: SyncCounts } | null
  done: StreamRunView[]
  /** Chunks committed so far, over every stream. */
  chunks: number
}

/** How one stream's run ended (or stands). */
export interface StreamRunView extends SyncCounts {
  stream: string
  runId: string
  status: 'running' | 'succeeded' | 'failed' | 'paused'
  error?: string
  errorCode?: string
}

export interface SyncWorkflowResult extends SyncCounts {
  /** The run of the last stream read. */
  runId: string
  status: 'succeeded' | 'paused'
  mode: SyncMode
  chunks: number
  streams: StreamRunView[]
  error?: string
  errorCode?: string
}

/** Details of the failure a failed sync workflow ends with. */
export interface SyncWorkflowFailure extends SyncCounts {
  runId: string
  status: 'failed'
  mode: SyncMode
  chunks: number
  streams: StreamRunView[]
  error: string
  errorCode: string
}

export interface SyncProgressView extends SyncCounts {
  phase: SyncWorkflowPhase
  runId: string | null
  mode: SyncMode | null
  chunks: number
  /** The stream being read. */
  stream: string | null
  streams: StreamRunView[]
  error?: string
}

/** The phase and running counts of a sync (counts advance once per committed chunk). */
export const syncProgressQuery = defineQuery<SyncProgressView>('syncProgress')

/**
 * Syncs one connection: each stream in turn as a run of its own: open it, commit chunks of pages
 * until the source has no more, close it. A chunk that fails is retried by Temporal (from the
 * committed cursor); when retries run out, or the failure is final, the stream's run is recorded
 * as failed and the next stream still runs, unless the failure concerns the whole connection
 * (bad credentials, an exhausted quota, which pauses the sync). The workflow fails, with the
 * readable error of the first failed stream, when any stream failed.
 */
export async function syncConnector(input: SyncWorkflowInput): Promise<SyncWorkflowResult> {
  const tuning = resolveTuning(input.tuning)
  const steps = proxyActivities<Activities>({
    startToCloseTimeout: '2 minutes',
    // The steps heartbeat too: a step whose worker died is retried elsewhere within this,
    // instead of holding the connection's sync until the start-to-close timeout.
    heartbeatTimeout: tuning.heartbeatTimeoutMs,
    retry: retryPolicy(tuning),
  })
  const chunks = proxyActivities<Activities>({
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: tuning.heartbeatTimeoutMs,
    retry: retryPolicy(tuning),
  })
  const { tenantId, connectorType } = input
  const mode: SyncMode = input.full ? 'full' : 'incremental'
  const state: SyncState = input.resume ?? {
    streams: await planStreams(steps, input, tuning.maxAttempts),
    index: 0,
    run: null,
    done: [],
    chunks: 0,
  }
  const progress: SyncProgressView = {
    phase: state.run ? 'syncing' : 'authenticating',
    runId: state.run?.runId ?? null,
    mode: state.run?.mode ?? null,
    chunks: 0,
    stream: state.streams[state.index]?.id ?? null,
    streams: state.done,
    ...zeroCounts(),
  }
  const refresh = (): void => {
    const current = state.run ? [state.run.totals] : []
    Object.assign(progress, sumCounts([...state.done, ...current]), {
      chunks: state.chunks,
      streams: [...state.done],
    })
  }
  refresh()
  setHandler(syncProgressQuery, () => ({ ...progress }))

  let chunksThisRun = 0
  for (; state.index < state.streams.length; state.index++) {
    const stream = state.streams[state.index]!.id
    progress.stream = stream
    state.run ??= await openRun(steps, { ...input, stream }, tuning.maxAttempts)
    const run = state.run
    progress.runId = run.runId
    progress.mode = run.mode
    progress.phase = 'syncing'
    const ref: RunRef = { tenantId, connectorType, runId: run.runId }
    let view: StreamRunView
    try {
      for (;;) {
        const chunk = await chunks.syncChunk({
          ...ref,
          maxPages: tuning.pagesPerChunk,
          ...(tuning.pageSize ? { pageSize: tuning.pageSize } : {}),
        })
        run.chunks += 1
        state.chunks += 1
        run.totals = chunk.totals
        chunksThisRun += 1
        refresh()
        if (chunk.done) break
        if (chunksThisRun >= tuning.chunksPerRun || workflowInfo().continueAsNewSuggested) {
          // continueAsNew throws ContinueAsNew, which the catch below passes through.
          return await continueAsNew<typeof syncConnector>({ ...input, resume: state })
        }
      }
      progress.phase = 'finalizing'
      const totals = await steps.finishSyncRun(ref)
      view = { stream, runId: run.runId, status: 'succeeded', ...totals }
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
      view = {
        stream,
        runId: run.runId,
        status: recorded.status,
        ...recorded.totals,
        error: recorded.message,
        errorCode: recorded.code,
      }
    }
    state.done.push(view)
    state.run = null
    refresh()
    if (view.status !== 'succeeded' && endsWholeSync(view.errorCode)) break
  }

  const last = state.done.at(-1)
  const failed = state.done.find((v) => v.status !== 'succeeded')
  const summary = {
    runId: last?.runId ?? '',
    mode: last ? (progress.mode ?? mode) : mode,
    chunks: progress.chunks,
    streams: state.done,
    ...sumCounts(state.done),
  }
  if (!failed) {
    progress.phase = 'complete'
    return { ...summary, status: 'succeeded' }
  }
  const error = syncFailureMessage({
    streams: state.streams.length,
    streamName: state.streams.find((s) => s.id === failed.stream)?.name ?? failed.stream,
    code: failed.errorCode,
    message: failed.error ?? '',
  })
  progress.error = error
  if (failed.status === 'paused') {
    // An exhausted quota ends the sync cleanly; the next one resumes from the cursors.
    progress.phase = 'complete'
    return { ...summary, status: 'paused', error, errorCode: failed.errorCode ?? 'internal' }
  }
  progress.phase = 'failed'
  const details: SyncWorkflowFailure = {
    ...summary,
    status: 'failed',
    error,
    errorCode: failed.errorCode ?? 'internal',
  }
  throw ApplicationFailure.create({
    message: error,
    type: details.errorCode,
    nonRetryable: true,
    details: [details],
  })
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
  /**
   * A batch's worker must report within this while it sends (default 30 s): one that died is
   * noticed and the batch is sent by another worker, instead of after the 5-minute timeout.
   */
  heartbeatTimeoutMs?: number
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
    heartbeatTimeout: input.heartbeatTimeoutMs ?? 30_000,
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

/** The streams to read; a failure here (no connection, no such stream) has no run to record it on. */
async function planStreams(
  steps: Pick<Activities, 'planSyncStreams'>,
  input: SyncWorkflowInput,
  maxAttempts: number,
): Promise<SyncState['streams']> {
  try {
    return await steps.planSyncStreams({
      tenantId: input.tenantId,
      connectorType: input.connectorType,
      ...(input.stream ? { stream: input.stream } : {}),
    })
  } catch (err) {
    throw finalFailure(err, maxAttempts)
  }
}

/** Starts a stream's sync_runs row; a failure here has no run to record it on. */
async function openRun(
  steps: Pick<Activities, 'startSyncRun'>,
  input: SyncWorkflowInput & { stream: string },
  maxAttempts: number,
): Promise<NonNullable<SyncState['run']>> {
  try {
    const { runId, mode } = await steps.startSyncRun({
      tenantId: input.tenantId,
      connectorType: input.connectorType,
      stream: input.stream,
      triggeredBy: input.triggeredBy ?? 'system',
      ...(input.partition !== undefined ? { partition: input.partition } : {}),
      ...(input.full ? { full: true } : {}),
    })
    return { runId, mode, chunks: 0, totals: zeroCounts() }
  } catch (err) {
    throw finalFailure(err, maxAttempts)
  }
}

function finalFailure(err: unknown, maxAttempts: number): unknown {
  if (!(err instanceof ActivityFailure)) return err
  const failure = describeFailure(err, maxAttempts)
  return ApplicationFailure.create({
    message: failure.message,
    type: failure.code,
    nonRetryable: true,
  })
}

function sumCounts(list: readonly SyncCounts[]): SyncCounts {
  const total = zeroCounts()
  for (const c of list) {
    total.pages += c.pages
    total.created += c.created
    total.updated += c.updated
    total.deleted += c.deleted
    total.errors += c.errors
  }
  return total
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

function retryPolicy(tuning: { maxAttempts: number; initialRetryMs: number }): RetryPolicy {
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
