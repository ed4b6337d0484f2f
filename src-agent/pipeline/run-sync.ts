import { randomUUID } from 'node:crypto'
import { and, eq, sql, type SQL } from 'drizzle-orm'
import type { DbHandle, Tx } from '../../db/client.js'
import { auditLog, connectors, syncRuns } from '../../db/schema/index.js'
import { withSyncWork, withTenant } from '../../db/tenant.js'
import {
  AppError,
  VendorError,
  describeError,
  endsWholeSync,
  syncFailureMessage,
} from '../../shared/errors.js'
import type { EntityType, FieldMapping, SyncMode, SyncResult } from '../../shared/schemas.js'
import { auditRow } from '../audit/audit.js'
import type { AnyConnector, Credentials, StreamDefinition } from '../connectors/interface.js'
import type { RetryEvent } from '../connectors/retry.js'
import type { ConnectorRegistry } from '../connectors/registry.js'
import { DEFAULT_STREAM, findStream, streamsOf } from '../connectors/streams.js'
import type { Logger } from '../logging/logger.js'
import type { Keyring } from '../secrets/crypto.js'
import { syncRecordsTotal, syncRunDuration, syncRunsTotal } from '../telemetry/metrics.js'
import { lockConnection, openConnectorConnection, type ConnectorRow } from './connection.js'
import { credentialHooks } from './credential-lock.js'
import { fetchPage, pageRecords, pageSize, withAllRecords } from './fetch-page.js'
import { readAhead, type PageAhead } from './read-ahead.js'
import { requireAgreement } from './agreements.js'
import { limitHeapGrowth } from './heap.js'
import { encodePage, type SyncRunRow } from './persist.js'
import { pageWriter, type PageInFlight, type PreparedPage } from './page-writer.js'
import { classifyFailure, syncCancelled, type SyncOutcome } from './sync-failure.js'
import { withSyncLock } from './sync-lock.js'
import {
  markFailed,
  pendingPartitions,
  resetCursor,
  setPartitions,
  streamMappings,
  upgradeLegacyCursor,
  type StreamKey,
} from './stream-state.js'

export interface SyncDeps {
  handle: DbHandle
  keyring: Keyring
  registry: ConnectorRegistry
  log: Logger
  /** Who triggered the run, for the audit log. */
  userId: string
}

export interface SyncRequest {
  tenantId: string
  connectorType: string
  /** Read only this stream (default: every stream of the connector, in its order). */
  stream?: string
  /** Read only this partition of the stream. */
  partition?: string
  /** Read everything (of the chosen streams) instead of resuming from the stored cursors. */
  full?: boolean
  pageSize?: number
  /** Aborts the vendor request in flight (and so the run). */
  signal?: AbortSignal
  /** Stops the sync at the next safe point: after the page in hand is committed. */
  stop?: AbortSignal
  onProgress?: (progress: SyncProgress) => void
}

export type SyncPhase = 'authenticating' | 'syncing' | 'finalizing' | 'complete' | 'failed'

export interface SyncCounts {
  pages: number
  created: number
  updated: number
  deleted: number
  errors: number
}

export interface SyncProgress extends SyncCounts {
  phase: SyncPhase
  /**
   * The stream this report is about: the one starting, or the one that committed a page (a
   * stream's last pages may commit after the next stream started). The counts are the sync's
   * totals so far.
   */
  stream: string | null
  /** The counts of that stream, so far. */
  streamCounts: SyncCounts
  /** How many records the stream holds, as its source last said (SyncResult.expected); else null. */
  expected: number | null
}

/** How one stream's run ended. */
export interface StreamSummary extends SyncCounts {
  stream: string
  runId: string
  status: 'succeeded' | 'failed' | 'paused'
  /** Its last committed cursor (null when it did not finish). */
  cursor: string | null
  error?: string
  errorCode?: string
  retryable?: boolean
}

export interface SyncSummary extends SyncCounts {
  /** Failed when any stream failed, paused when the quota paused it, else succeeded. */
  status: 'succeeded' | 'failed' | 'paused'
  mode: SyncMode
  /** Each stream read, in order, with its own run. */
  streams: StreamSummary[]
  error?: string
  errorCode?: string
  /** Whether trying again later may succeed (false for bad credentials or bad config). */
  retryable?: boolean
}

/**
 * Runs one sync of one connection to completion: each stream (or the one asked for) in turn, as
 * a run of its own, page by page, each page's rows and the stream's new cursor committed in one
 * transaction, so a sync killed at any point resumes from the last committed page with nothing
 * lost and nothing duplicated. A stream starts reading once the one before has read its last
 * page, while that one's last pages are still being written, so the source is never left idle
 * while they are; its first page was already read while the stream before was (read-ahead.ts),
 * so a source that prepares a read first (a Salesforce Bulk job) does not hold the sync up
 * either. A failing stream is recorded and the next one still runs, except after what
 * stops them all (a stop, refused credentials, an exhausted quota), which comes while a stream
 * reads. Failures are returned, not thrown. The Temporal workflow runs the same steps per
 * stream, one stream after the other: startRun, runPages (in chunks), finishRun / failRun.
 */
export async function runSync(deps: SyncDeps, request: SyncRequest): Promise<SyncSummary> {
  const { tenantId, connectorType } = request
  const connector = deps.registry.get(connectorType)
  const streams = request.stream ? [findStream(connector, request.stream)] : streamsOf(connector)
  const mode: SyncMode = request.full ? 'full' : 'incremental'
  return withSyncLock(deps.handle, tenantId, connectorType, async () => {
    const counts: SyncCounts = { pages: 0, created: 0, updated: 0, deleted: 0, errors: 0 }
    // Each report names the stream it is about (the one that committed a page, or the one
    // starting) with its own counts; the last stream started ends the sync's reports.
    let current: StreamProgress | null = null
    const progress = (phase: SyncPhase, stream: StreamProgress | null): void =>
      request.onProgress?.({
        phase,
        stream: stream?.id ?? null,
        ...counts,
        streamCounts: { ...(stream?.counts ?? counts) },
        expected: stream?.expected ?? null,
      })
    const stopped = (): boolean =>
      request.signal?.aborted === true || request.stop?.aborted === true
    const runs: Array<Promise<StreamSummary>> = []
    // Run ids of the streams started so far: one still writing is left running by the next.
    const live: string[] = []
    // The next stream's first page, read while this one is (see read-ahead.ts).
    let ahead: PageAhead | undefined
    try {
      for (const [index, stream] of streams.entries()) {
        if (stopped()) break
        const firstPage = ahead?.stream === stream.id ? ahead : undefined
        ahead = undefined
        const next = streams[index + 1]
        const reading: StreamProgress = {
          id: stream.id,
          counts: { pages: 0, created: 0, updated: 0, deleted: 0, errors: 0 },
          expected: null,
        }
        current = reading
        progress('authenticating', reading)
        let readAll!: () => void
        const hasReadAll = new Promise<void>((resolve) => (readAll = resolve))
        const run = syncStream(
          deps,
          { ...request, stream: stream.id },
          {
            stopped,
            live,
            ...(firstPage ? { firstPage } : {}),
            onStart: (runId) => live.push(runId),
            // Once this stream has its first page: its run is open (the connection checked, any
            // terms accepted) and its credentials are fresh. Only when more pages follow: the
            // next stream then starts after a while, and its first page is worth having by then
            // (a stream read in one page, as most are in an incremental sync, is done at once).
            onFirstRead: (more) => {
              if (more && next && !next.partitioned && !stopped()) {
                ahead = readAhead(deps, {
                  tenantId,
                  connectorType,
                  stream: next.id,
                  ...(request.full ? { full: true } : {}),
                  ...(request.signal ? { signal: request.signal } : {}),
                  ...(request.stop ? { stop: request.stop } : {}),
                })
              }
            },
            onReadAll: readAll,
            onPage: (page) => {
              addCounts(counts, page)
              addCounts(reading.counts, page)
              // A source tells the size once (a count before the first page) or on every page.
              if (page.expected !== undefined) reading.expected = page.expected
              progress('syncing', reading)
            },
          },
        )
        runs.push(run)
        const ended = await Promise.race([run, hasReadAll])
        // A paused stream ran out of API quota: that, too, ends the whole sync.
        if (ended && ended.status !== 'succeeded' && endsWholeSync(ended.errorCode)) break
      }
    } finally {
      // Nothing is left writing when the sync returns or throws (and so lets go of its lock).
      await Promise.allSettled(runs)
      // A page read ahead for a stream that did not start (the sync ended first) is dropped.
      ahead?.discard()
      await ahead?.read.catch(() => undefined)
    }
    const results = await Promise.all(runs)
    const failed = results.find((r) => r.status !== 'succeeded')
    progress(failed || stopped() ? 'failed' : 'complete', current)
    if (results.length === 0 || (stopped() && !failed)) {
      const outcome = classifyFailure(syncCancelled(), connector.name)
      return { status: 'failed', mode, streams: results, ...counts, ...failureFields(outcome) }
    }
    if (!failed) return { status: 'succeeded', mode, streams: results, ...counts }
    return {
      status: failed.status,
      mode,
      streams: results,
      ...counts,
      error: syncFailureMessage({
        streams: streams.length,
        streamName: streams.find((s) => s.id === failed.stream)?.name ?? failed.stream,
        code: failed.errorCode,
        message: failed.error ?? '',
      }),
      errorCode: failed.errorCode,
      retryable: failed.retryable,
    } as SyncSummary
  })
}

/** One stream's counts so far, as runSync reports them. */
interface StreamProgress {
  id: string
  counts: SyncCounts
  expected: number | null
}

/** How runSync follows one stream's run. */
interface StreamHooks {
  stopped: () => boolean
  /** Runs of this sync still being written (see startRun). */
  live: readonly string[]
  /** The stream's first page, read ahead (see read-ahead.ts). */
  firstPage?: PageAhead
  /** The stream's run is open. */
  onStart: (runId: string) => void
  /** The stream's first page has been read (it is yet to be written); more pages follow or not. */
  onFirstRead: (more: boolean) => void
  /** The stream's last page has been read (it may still be being written). */
  onReadAll: () => void
  onPage: (page: SyncCounts & { expected?: number }) => void
}

/**
 * One stream, as one run: open it, read its pages, record how it ended. Failures are returned,
 * except one to open the run.
 */
async function syncStream(
  deps: SyncDeps,
  request: SyncRequest & { stream: string },
  { stopped, live, firstPage, onStart, onFirstRead, onReadAll, onPage }: StreamHooks,
): Promise<StreamSummary> {
  const { tenantId, connectorType, stream } = request
  const counts: SyncCounts = { pages: 0, created: 0, updated: 0, deleted: 0, errors: 0 }
  const { run, start } = await openRun(
    deps,
    {
      tenantId,
      connectorType,
      stream,
      live,
      ...(request.partition !== undefined ? { partition: request.partition } : {}),
      ...(request.full ? { full: true } : {}),
    },
    true,
  )
  onStart(run.runId)
  const target = { tenantId, connectorType, runId: run.runId }
  try {
    const result = await runPagesOf(
      deps,
      {
        ...target,
        ...(request.pageSize ? { pageSize: request.pageSize } : {}),
        ...(request.signal ? { signal: request.signal } : {}),
        ...(request.stop ? { stop: request.stop } : {}),
        ...(firstPage ? { firstPage } : {}),
        onFirstRead,
        onReadAll,
        onPage: (page) => {
          addCounts(counts, page)
          onPage(page)
        },
      },
      start,
      // The stream's last page ends its run in the same transaction.
      // That page's statement took the connection's lock with the run's end.
      (tx, ended) => runSucceeded(deps, tx, target, ended),
    )
    // Unless no page was written (a stream whose partitions are none).
    if (!result.ended) await finishRun(deps, target)
    return { stream, runId: run.runId, status: 'succeeded', cursor: result.cursor, ...counts }
  } catch (err) {
    // Stopped on request, wherever the signal caught it (between pages or in a request).
    const outcome = await failRun(deps, target, stopped() ? syncCancelled() : err)
    return {
      stream,
      runId: run.runId,
      status: outcome.runStatus,
      cursor: null,
      ...counts,
      ...failureFields(outcome),
    }
  }
}

function failureFields(outcome: SyncOutcome) {
  return { error: outcome.message, errorCode: outcome.code, retryable: outcome.retryable }
}

export interface RunTarget {
  tenantId: string
  connectorType: string
  runId: string
}

/**
 * Opens a sync_runs row for one stream (status running), marks the connection syncing and
 * audits the trigger. A partitioned stream's partitions are listed from the source first. A full
 * run clears the stream's stored cursors in the same transaction, so a crashed full run resumes
 * where its last committed page left off rather than starting again.
 */
export async function startRun(
  deps: SyncDeps,
  request: StartRunRequest,
): Promise<{ runId: string; connectorId: string; mode: SyncMode; stream: string }> {
  return (await openRun(deps, request, false)).run
}

interface StartRunRequest {
  tenantId: string
  connectorType: string
  /** Default: the connector's first (or only) stream. */
  stream?: string
  partition?: string
  full?: boolean
  /**
   * Runs of the same sync opened before this one (an earlier stream's, perhaps still being
   * written): left running. The first run of a sync closes the connection's other runs.
   */
  live?: readonly string[]
}

/**
 * Opens a run (startRun); with `withStart`, also loads in the same transaction what its pages are
 * read with, so that a run read at once (runSync's) does not open another transaction for it.
 */
async function openRun(
  deps: SyncDeps,
  request: StartRunRequest,
  withStart: boolean,
): Promise<{
  run: { runId: string; connectorId: string; mode: SyncMode; stream: string }
  start?: RunStart
}> {
  const { tenantId, connectorType } = request
  const connector = deps.registry.get(connectorType)
  const stream = request.stream ? findStream(connector, request.stream) : streamsOf(connector)[0]!
  const mode: SyncMode = request.full ? 'full' : 'incremental'
  // Before any vendor call (listing partitions included); no transaction for connectors without terms.
  if (connector.requiredAgreement) {
    await withTenant(deps.handle.db, tenantId, (tx) => requireAgreement(tx, tenantId, connector))
  }
  const partitions = stream.partitioned
    ? await listPartitions(deps, { tenantId, connector, stream: stream.id })
    : undefined
  if (request.partition !== undefined && !partitions?.includes(request.partition)) {
    throw new AppError(
      'config_invalid',
      stream.partitioned
        ? `${connector.name}'s stream "${stream.id}" has no partition "${request.partition}". Its partitions: ${partitions?.join(', ') || 'none'}.`
        : `${connector.name}'s stream "${stream.id}" has no partitions.`,
    )
  }
  return withSyncWork(deps.handle.db, tenantId, async (tx) => {
    const connection = await openConnectorConnection(tx, deps.keyring, tenantId, connector)
    const { row } = connection
    // Only the runs of one sync of a connection are ever live (the sync lock), so one still
    // marked running that is not this sync's belongs to a process that died. A sync's later
    // runs find none: its first closed them, under the same lock.
    if (!request.live?.length) {
      await tx
        .update(syncRuns)
        .set({
          status: 'failed',
          finishedAt: sql`now()`,
          error:
            'Interrupted: the agent stopped before this run finished. A later run resumed from its last committed page.',
          errorCode: 'sync_incomplete',
        })
        .where(and(eq(syncRuns.connectorId, row.id), eq(syncRuns.status, 'running')))
    }
    await upgradeLegacyCursor(tx, connector, row)
    const key = { tenantId, connectorId: row.id, stream: stream.id }
    if (partitions) await setPartitions(tx, key, partitions)
    if (request.full) await resetCursor(tx, key, request.partition)
    const runId = randomUUID()
    const start = withStart
      ? await loadRunStart(tx, connector, {
          tenantId,
          runId,
          connection,
          run: { mode, stream: stream.id, partition: request.partition ?? null },
        })
      : undefined
    // The run, the connection marked syncing and the audit of the trigger: one statement, last,
    // so that the connection's row is locked only from here to the commit (a run of the same
    // sync ending meanwhile waits for it: see lockConnection).
    const run = tx.$with('run').as(
      tx
        .insert(syncRuns)
        .values({
          id: runId,
          tenantId,
          connectorId: row.id,
          mode,
          stream: stream.id,
          partition: request.partition ?? null,
        })
        .returning({ id: syncRuns.id }),
    )
    const syncing = tx.$with('syncing').as(
      tx
        .update(connectors)
        .set({ status: 'syncing', updatedAt: sql`now()` })
        .where(eq(connectors.id, row.id))
        .returning({ id: connectors.id }),
    )
    await tx
      .with(run, syncing)
      .insert(auditLog)
      .values(
        auditRow({
          tenantId,
          userId: deps.userId,
          action: 'sync.trigger',
          resource: 'connector',
          resourceId: row.id,
          metadata: {
            connectorType,
            mode,
            runId,
            stream: stream.id,
            ...(request.partition !== undefined ? { partition: request.partition } : {}),
          },
        }),
      )
    const opened = { runId, connectorId: row.id, mode, stream: stream.id }
    return start ? { run: opened, start } : { run: opened }
  })
}

/** The partitions of a partitioned stream, as the source lists them now. */
async function listPartitions(
  deps: SyncDeps,
  input: { tenantId: string; connector: AnyConnector; stream: string },
): Promise<string[]> {
  const { tenantId, connector } = input
  const opened = await withTenant(deps.handle.db, tenantId, (tx) =>
    openConnectorConnection(tx, deps.keyring, tenantId, connector),
  )
  const hooks = credentialHooks(deps, { tenantId, connector, connectorId: opened.row.id })
  const partitions = await connector.listPartitions!(opened.credentials, input.stream, {
    log: deps.log.child({ tenantId, connector: connector.id, stream: input.stream }),
    ...hooks,
    labels: { tenant: tenantId, connector: connector.id },
  })
  if (!Array.isArray(partitions) || partitions.some((p) => typeof p !== 'string' || p === '')) {
    throw new VendorError(
      'vendor_bad_response',
      `${connector.name} listed the partitions of "${input.stream}" in a form we do not understand.`,
      { retryable: false },
    )
  }
  return partitions
}

export interface RunPagesRequest extends RunTarget {
  /** Stop after this many committed pages (a chunk); the run is then not done yet. */
  maxPages?: number
  pageSize?: number
  /** Aborts the vendor request in flight (and so the run). */
  signal?: AbortSignal
  /** Stops before the next page: the page in hand is finished and committed first. */
  stop?: AbortSignal
  /**
   * The run's first page, read ahead while the sync's stream before was read: taken instead of
   * a first fetch when the run reads its stream (no partitions) from the same cursor.
   */
  firstPage?: PageAhead
  /**
   * Once the run's first page has been read from the source, before it is written, with whether
   * more pages follow it.
   */
  onFirstRead?: (more: boolean) => void
  /** Once the run's last page has been read from the source, before it is written. */
  onReadAll?: () => void
  /**
   * After each committed page, with that page's counts, the committed cursor and, when the
   * source said, how many records the stream holds.
   */
  onPage?: (
    page: SyncCounts & { cursor: string | null; partition: string; expected?: number },
  ) => void
}

/**
 * Records read, prepared and encoded between two looks at the event loop: a millisecond or two
 * of work, so that the current page's statements go out as soon as Postgres answers the one
 * before.
 */
const PREPARE_SLICE = 100

/** A page that has arrived: what the run keeps of it (see arrived), and its preparation. */
interface ArrivedPage {
  /** The page; its records only where the connector's side tables need them. */
  page: SyncResult
  /** How many records it held. */
  size: number
  prepared: Promise<PreparedPage>
}

/** Resolves after the event loop has handled what arrived meanwhile (I/O first). */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/**
 * Fetches and commits pages of the run's stream, partition after partition, each from its last
 * committed cursor, until every partition is read to its end (done) or `maxPages` pages were
 * committed.
 */
export async function runPages(
  deps: SyncDeps,
  request: RunPagesRequest,
): Promise<{ done: boolean; cursor: string | null; counts: SyncCounts }> {
  return runPagesOf(deps, request)
}

/** How readPages ends its run with the run's last page (see PageTarget.endRun). */
type EndRun = (tx: Tx, run: SyncRunRow) => Promise<void>

function runPagesOf(
  deps: SyncDeps,
  request: RunPagesRequest,
  started?: RunStart,
  endRun?: EndRun,
): Promise<PagesRead> {
  return readPages(deps, request, started, endRun)
}

/** Where readPages left the run; `ended` when its last page ended it (endRun). */
interface PagesRead {
  done: boolean
  cursor: string | null
  counts: SyncCounts
  ended: boolean
}

/** What a run's pages are read with: its connection, stream, mappings and where it stands. */
interface RunStart {
  row: ConnectorRow
  credentials: Credentials
  mode: SyncMode
  stream: StreamDefinition
  key: StreamKey
  mappings: Map<EntityType, FieldMapping[]>
  partitions: Array<{ partition: string; cursor: string | null }>
}

async function loadRunStart(
  tx: Tx,
  connector: AnyConnector,
  input: {
    tenantId: string
    runId: string
    connection: { row: ConnectorRow; credentials: Credentials }
    run: { mode: SyncMode; stream: string | null; partition: string | null }
  },
): Promise<RunStart> {
  const { tenantId, runId, connection, run } = input
  // A run from before streams read the connector's one stream.
  const stream = findStream(connector, run.stream ?? DEFAULT_STREAM)
  const key = { tenantId, connectorId: connection.row.id, stream: stream.id }
  const mappings = await streamMappings(tx, connector, connection.row.id, stream)
  const partitions = await pendingPartitions(tx, key, {
    runId,
    partitioned: stream.partitioned === true,
    only: run.partition,
  })
  return { ...connection, mode: run.mode, stream, key, mappings, partitions }
}

async function readPages(
  deps: SyncDeps,
  request: RunPagesRequest,
  /** What the run's pages are read with, loaded as it was opened (see openRun). */
  started?: RunStart,
  /** Ends the run with its last page; without it the caller ends the run (finishRun). */
  endRun?: EndRun,
): Promise<PagesRead> {
  const { tenantId, connectorType, runId } = request
  const connector = deps.registry.get(connectorType)
  limitHeapGrowth()
  const start =
    started ??
    (await withTenant(deps.handle.db, tenantId, async (tx) => {
      const connection = await openConnectorConnection(tx, deps.keyring, tenantId, connector)
      const [run] = await tx
        .select({ mode: syncRuns.mode, stream: syncRuns.stream, partition: syncRuns.partition })
        .from(syncRuns)
        .where(eq(syncRuns.id, runId))
      if (!run)
        throw new AppError('internal', `Sync run ${runId} does not exist for tenant "${tenantId}".`)
      return loadRunStart(tx, connector, { tenantId, runId, connection, run })
    }))
  const runLog = deps.log.child({
    tenantId,
    connector: connectorType,
    runId,
    mode: start.mode,
    stream: start.stream.id,
  })
  const counts: SyncCounts = { pages: 0, created: 0, updated: 0, deleted: 0, errors: 0 }
  let credentials = start.credentials
  const hooks = credentialHooks(deps, { tenantId, connector, connectorId: start.row.id })
  const retries = retryRecorder(deps, { tenantId, runId }, runLog)
  const baseOptions: Parameters<AnyConnector['sync']>[2] = {
    ...(start.mode === 'full' ? { full: true } : {}),
    ...(request.pageSize ? { pageSize: request.pageSize } : {}),
    ...(request.signal ? { signal: request.signal } : {}),
    ...(request.stop ? { stop: request.stop } : {}),
    stream: start.stream.id,
    log: runLog,
    // Token refreshes of one connection take turns across processes (rotation-safe).
    credentialLock: hooks.credentialLock,
    onCredentialsChanged: async (next) => {
      credentials = next
      await hooks.onCredentialsChanged(next)
    },
    onRetry: retries.onRetry,
    // The vendor calls made for this run are counted under its tenant and connector.
    labels: { tenant: tenantId, connector: connectorType },
  }
  let cursor: string | null = null
  let tookFirstPage = false
  let readOne = false
  let ended = false
  // Whether the last committed page's rows were all new: the next page's probably are too (a
  // first or full sync), and persistPage then tries the cheapest insert first.
  let lastPageNew = true
  try {
    for (const [index, pending] of start.partitions.entries()) {
      const last = index === start.partitions.length - 1
      const result = await pageLoop(pending.partition, pending.cursor, last)
      cursor = result.cursor
      if (!result.done) return { done: false, cursor, counts, ended }
      if (request.maxPages !== undefined && counts.pages >= request.maxPages && !last) {
        return { done: false, cursor, counts, ended }
      }
    }
    return { done: true, cursor, counts, ended }
  } finally {
    await retries.flush()
  }

  /**
   * The page read ahead for this run (request.firstPage), if it was read from `from`: once
   * only, for a stream without partitions. The retries it met count as this run's. A read that
   * failed fails the run as its own first fetch would; one from another cursor is read again.
   */
  function takeFirstPage(from: string | null): Promise<SyncResult> | undefined {
    const ahead = request.firstPage
    if (!ahead || tookFirstPage || start.stream.partitioned || ahead.stream !== start.stream.id)
      return undefined
    tookFirstPage = true
    const page = ahead.read
      .finally(() => {
        for (const event of ahead.retries) retries.onRetry(event)
      })
      .then((read) =>
        read && read.from === from
          ? read.page
          : fetchPage(connector, credentials, from, baseOptions),
      )
    // Awaited later; until then a failure must not count as unhandled.
    page.catch(() => undefined)
    return page
  }

  /** A page's records mapped, checked and encoded for COPY, a slice at a time. */
  async function preparePage(page: SyncResult): Promise<PreparedPage> {
    const mappingsFor = (e: EntityType) => start.mappings.get(e) ?? []
    return { batches: await encodePage(pageRecords(page), mappingsFor, nextTurn, PREPARE_SLICE) }
  }

  /**
   * A page as the loop holds it once it has arrived: its preparation starts at once, reading
   * its records a slice at a time (those a connector left unread in the page's body are read
   * out only then), and each is let go as soon as it is encoded. A connector with side tables
   * has its records read out at once and kept until the page is written. Three pages are in
   * flight at a time; holding their bytes only keeps the process small.
   */
  function arrived(fetching: Promise<SyncResult>): Promise<ArrivedPage> {
    const page = fetching.then((fetched) => {
      const read = connector.sideTables ? withAllRecords(fetched) : fetched
      const prepared = preparePage(read)
      // Awaited when the page's turn comes; until then a failure must not count as unhandled.
      prepared.catch(() => undefined)
      const { unread: _unread, ...kept } = read
      return {
        page: connector.sideTables ? read : { ...kept, records: [] },
        size: pageSize(read),
        prepared,
      }
    })
    // Awaited later; until then a failure must not count as unhandled.
    page.catch(() => undefined)
    return page
  }

  /** One partition's pages, from its committed cursor; `done` once it is read to its end. */
  async function pageLoop(
    partition: string,
    from: string | null,
    lastPartition: boolean,
  ): Promise<{ done: boolean; cursor: string | null }> {
    let cursor = from
    const options = {
      ...baseOptions,
      ...(start.stream.partitioned ? { partition } : {}),
    }
    const fetchFrom = (at: string | null): Promise<SyncResult> =>
      fetchPage(connector, credentials, at, options)
    const stopped = () => Boolean(request.signal?.aborted || request.stop?.aborted)
    const writePage = pageWriter({
      db: deps.handle.db,
      tenantId,
      connector,
      runId,
      stream: start.key,
      partition,
      expectNew: () => lastPageNew,
      stopped,
      ...(endRun && lastPartition
        ? {
            endRun: async (tx: Tx, run: SyncRunRow) => {
              await endRun(tx, run)
              ended = true
            },
          }
        : {}),
    })
    // The next page: fetched, then mapped, checked and encoded as soon as it arrives.
    let pending = arrived(takeFirstPage(cursor) ?? fetchFrom(cursor))
    // The page being written; the next one is staged meanwhile and committed after it.
    let writing: PageInFlight | undefined
    const take = (): PageInFlight | undefined => {
      const taken = writing
      writing = undefined
      return taken
    }
    try {
      for (;;) {
        if (stopped()) {
          // The page in hand is written and counted; nothing after it starts.
          const last = take()
          if (last) await settle(last)
          throw syncCancelled()
        }
        const { page, size, prepared } = await pending
        if (!readOne) {
          readOne = true
          request.onFirstRead?.(page.hasMore || !lastPartition)
        }
        if (page.hasMore && size === 0 && page.cursor === cursor) {
          throw new VendorError(
            'vendor_bad_response',
            `${connector.name} reported more data but returned an empty page without moving its cursor.`,
            { retryable: false },
          )
        }
        if (!page.hasMore && lastPartition) request.onReadAll?.()
        const read = counts.pages + (writing ? 1 : 0) + 1
        const chunkFull = request.maxPages !== undefined && read >= request.maxPages
        // The next page is fetched, then mapped, checked and encoded, while this one is written,
        // so the source, the transform and Postgres work at the same time. A failed prefetch (or
        // a mapping error in it) surfaces only after this page has committed.
        if (page.hasMore && !chunkFull) pending = arrived(fetchFrom(page.cursor))
        const ready = await prepared
        const previous = take()
        const before = previous && { page: previous, settled: settle(previous) }
        writing = writePage(page, ready, before)
        if (before) await before.settled
        if (!page.hasMore || chunkFull) {
          await settle(take()!)
          return { done: !page.hasMore, cursor: page.cursor }
        }
        cursor = page.cursor
      }
    } finally {
      // A failure leaves no transaction open behind it: a page still being written commits (and
      // is counted) or rolls back first.
      const last = take()
      if (last) await settle(last).catch(() => undefined)
    }

    /** Waits for a page's commit, then counts it and reports it. */
    async function settle({ page, upserts, counts: written }: PageInFlight): Promise<void> {
      const pageCounts = await written
      lastPageNew = pageCounts.created === upserts
      addCounts(counts, { pages: 1, ...pageCounts })
      countRecords(
        { tenant: tenantId, connector: connectorType, stream: start.stream.id },
        pageCounts,
      )
      runLog.debug({ page: counts.pages, partition, ...pageCounts }, 'page committed')
      request.onPage?.({
        pages: 1,
        ...pageCounts,
        cursor: page.cursor,
        partition,
        ...(page.expected !== undefined ? { expected: page.expected } : {}),
      })
    }
  }
}

/**
 * Counts each retried vendor call on the run (`retries`, and `retry_reasons` by reason), each in
 * a small transaction of its own, in order; `flush` waits for the ones still being written.
 * Diagnostics: a failure to count is logged and does not stop the sync.
 */
function retryRecorder(
  deps: Pick<SyncDeps, 'handle'>,
  target: { tenantId: string; runId: string },
  log: Logger,
): { onRetry: (event: RetryEvent) => void; flush: () => Promise<void> } {
  let queue: Promise<void> = Promise.resolve()
  return {
    onRetry: (event) => {
      const reason = event.reason.slice(0, 100)
      queue = queue.then(() =>
        withTenant(deps.handle.db, target.tenantId, async (tx) => {
          await tx
            .update(syncRuns)
            .set({
              retries: sql`${syncRuns.retries} + 1`,
              retryReasons: sql`jsonb_set(${syncRuns.retryReasons}, array[${reason}::text], to_jsonb(coalesce((${syncRuns.retryReasons} ->> ${reason})::int, 0) + 1))`,
            })
            .where(eq(syncRuns.id, target.runId))
        }).catch((err: unknown) => {
          log.warn({ err: describeError(err) }, 'could not count a retry on the run')
        }),
      )
    },
    flush: () => queue,
  }
}

/** Marks the run succeeded and the connection connected, with the run's totals from its row. */
export async function finishRun(deps: SyncDeps, target: RunTarget): Promise<SyncCounts> {
  return withSyncWork(deps.handle.db, target.tenantId, async (tx) => {
    const [run] = await tx
      .update(syncRuns)
      .set({ status: 'succeeded', finishedAt: sql`now()` })
      .where(eq(syncRuns.id, target.runId))
      .returning()
    if (!run) throw new AppError('internal', `Sync run ${target.runId} does not exist.`)
    await lockConnection(tx, run.connectorId)
    await runSucceeded(deps, tx, target, run)
    return {
      pages: run.pages,
      created: run.created,
      updated: run.updated,
      deleted: run.deleted,
      errors: run.errors,
    }
  })
}

/**
 * What follows a run marked succeeded, in the transaction that marked it (finishRun's, or its
 * last page's) and holds the connection's row lock (lockConnection; a last page takes it in its
 * own statement, see persistPage): the connection connected, unless another of its runs is still
 * running, and its error cleared, unless another stream's latest run failed.
 */
async function runSucceeded(
  deps: SyncDeps,
  tx: Tx,
  target: RunTarget,
  run: SyncRunRow,
): Promise<void> {
  countRun(target, { ...run, outcome: 'succeeded' })
  await tx
    .update(connectors)
    .set({
      status: connectedUnlessSyncing(run.connectorId, run.id),
      lastSyncAt: sql`now()`,
      lastSyncError: sql`case when exists (${failingStreams(run.connectorId)}) then ${connectors.lastSyncError} end`,
      updatedAt: sql`now()`,
    })
    .where(eq(connectors.id, run.connectorId))
  deps.log.info(
    { tenantId: target.tenantId, connector: target.connectorType, runId: run.id, pages: run.pages },
    'sync finished',
  )
}

/**
 * The streams of a connection whose latest ended run failed. The connection's streams are
 * listed by skipping through its runs one stream at a time, and each stream's latest run is read
 * backwards from its newest: a few probes of sync_runs_connector_stream_idx, where a scan of the
 * connection's runs would grow with its history (four runs an hour per stream).
 */
export function failingStreams(connectorId: string): SQL {
  return sql`
    with recursive streams(stream) as (
      (select stream from sync_runs
        where connector_id = ${connectorId} and stream is not null order by stream limit 1)
      union all
      select (select r.stream from sync_runs r
          where r.connector_id = ${connectorId} and r.stream > s.stream order by r.stream limit 1)
        from streams s where s.stream is not null
    )
    select s.stream from streams s
    cross join lateral (
      select r.status from sync_runs r
      where r.connector_id = ${connectorId} and r.stream = s.stream and r.status <> 'running'
      order by r.started_at desc limit 1
    ) latest
    where s.stream is not null and latest.status = 'failed'`
}

/**
 * A connection's status once one of its runs ended well: 'syncing' while another run of it (the
 * next stream of the same sync) is still running, else 'connected'. Read under lockConnection.
 */
export function connectedUnlessSyncing(connectorId: string, runId: string): SQL<string> {
  return sql<string>`case when exists (select 1 from ${syncRuns} where ${syncRuns.connectorId} = ${connectorId} and ${syncRuns.status} = 'running' and ${syncRuns.id} <> ${runId}) then 'syncing' else 'connected' end`
}

/** Records a failed (or quota-paused) run and what the connection needs; returns the outcome. */
export async function failRun(
  deps: SyncDeps,
  target: RunTarget,
  err: unknown,
): Promise<SyncOutcome> {
  const connector = deps.registry.get(target.connectorType)
  const outcome = classifyFailure(err, connector.name)
  deps.log.warn(
    {
      tenantId: target.tenantId,
      connector: target.connectorType,
      runId: target.runId,
      code: outcome.code,
      error: outcome.message,
    },
    'sync failed',
  )
  await withTenant(deps.handle.db, target.tenantId, async (tx) => {
    const [run] = await tx
      .update(syncRuns)
      .set({
        status: outcome.runStatus,
        finishedAt: sql`now()`,
        error: outcome.message,
        errorCode: outcome.code,
      })
      .where(eq(syncRuns.id, target.runId))
      .returning({
        connectorId: syncRuns.connectorId,
        stream: syncRuns.stream,
        startedAt: syncRuns.startedAt,
        finishedAt: syncRuns.finishedAt,
      })
    if (!run) return
    countRun(target, {
      ...run,
      outcome: outcome.code === 'sync_cancelled' ? 'cancelled' : outcome.runStatus,
    })
    if (run.stream !== null) {
      await markFailed(
        tx,
        { tenantId: target.tenantId, connectorId: run.connectorId, stream: run.stream },
        {
          runId: target.runId,
          error: outcome.message,
          partitioned: connector.streams?.find((s) => s.id === run.stream)?.partitioned === true,
        },
      )
    }
    await lockConnection(tx, run.connectorId)
    await tx
      .update(connectors)
      .set({
        status:
          outcome.connectorStatus === 'connected'
            ? connectedUnlessSyncing(run.connectorId, target.runId)
            : outcome.connectorStatus,
        lastSyncError: outcome.connectorError,
        updatedAt: sql`now()`,
      })
      .where(eq(connectors.id, run.connectorId))
  })
  return outcome
}

/** A page's committed records, on the metrics. */
function countRecords(
  labels: { tenant: string; connector: string; stream: string },
  page: Omit<SyncCounts, 'pages'>,
): void {
  const changes = {
    created: page.created,
    updated: page.updated,
    deleted: page.deleted,
    quarantined: page.errors,
  }
  for (const [change, n] of Object.entries(changes)) {
    if (n > 0) syncRecordsTotal.inc({ ...labels, change }, n)
  }
}

/** An ended run, on the metrics: its outcome and how long it took from start to end. */
function countRun(
  target: RunTarget,
  run: { stream: string | null; startedAt: Date; finishedAt: Date | null; outcome: string },
): void {
  const stream = run.stream ?? DEFAULT_STREAM
  syncRunsTotal.inc({
    tenant: target.tenantId,
    connector: target.connectorType,
    stream,
    outcome: run.outcome,
  })
  if (run.finishedAt) {
    const seconds = Math.max(0, (run.finishedAt.getTime() - run.startedAt.getTime()) / 1000)
    syncRunDuration.observe(
      { connector: target.connectorType, stream, outcome: run.outcome },
      seconds,
    )
  }
}

function addCounts(total: SyncCounts, more: SyncCounts): void {
  total.pages += more.pages
  total.created += more.created
  total.updated += more.updated
  total.deleted += more.deleted
  total.errors += more.errors
}
