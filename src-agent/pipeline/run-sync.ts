import { and, eq, sql } from 'drizzle-orm'
import type { DbHandle } from '../../db/client.js'
import { describePostgresError } from '../../db/errors.js'
import { connectors, syncRuns } from '../../db/schema/index.js'
import { withTenant } from '../../db/tenant.js'
import { AppError, VendorError, describeError } from '../../shared/errors.js'
import {
  entityTypes,
  sourceRecordSchema,
  type EntityType,
  type FieldMapping,
  type SyncMode,
  type SyncResult,
} from '../../shared/schemas.js'
import { recordAudit } from '../audit/audit.js'
import type { AnyConnector, Credentials } from '../connectors/interface.js'
import type { RetryEvent } from '../connectors/retry.js'
import type { ConnectorRegistry } from '../connectors/registry.js'
import type { Logger } from '../logging/logger.js'
import type { Keyring } from '../secrets/crypto.js'
import { loadMappings } from './stored-mappings.js'
import { openConnection } from './connection.js'
import { credentialHooks } from './credential-lock.js'
import { persistPage } from './persist.js'
import { prepareRecords } from './prepare.js'
import { boundedMessage } from './storable.js'

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
  /** Read everything instead of resuming from the stored cursor. */
  full?: boolean
  pageSize?: number
  /** Aborts the vendor request in flight (and so the run). */
  signal?: AbortSignal
  /** Stops the run at the next safe point: after the page in hand is committed. */
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
}

export interface SyncSummary extends SyncCounts {
  runId: string
  status: 'succeeded' | 'failed' | 'paused'
  mode: SyncMode
  cursor: string | null
  error?: string
  errorCode?: string
  /** Whether trying again later may succeed (false for bad credentials or bad config). */
  retryable?: boolean
}

/**
 * Runs one sync of one connection to completion: page by page, each page's rows and the new
 * cursor committed in one transaction, so a run killed at any point resumes from the last
 * committed page with nothing lost and nothing duplicated. Failures are recorded on the run and
 * the connector, then returned (status 'failed' or 'paused'), not thrown. The Temporal
 * activities run the same three steps: startRun, runPages (in chunks), finishRun / failRun.
 */
export async function runSync(deps: SyncDeps, request: SyncRequest): Promise<SyncSummary> {
  const { tenantId, connectorType } = request
  deps.registry.get(connectorType)
  return withSyncLock(deps.handle, tenantId, connectorType, async () => {
    const counts: SyncCounts = { pages: 0, created: 0, updated: 0, deleted: 0, errors: 0 }
    const progress = (phase: SyncPhase): void => request.onProgress?.({ phase, ...counts })
    progress('authenticating')
    const run = await startRun(deps, {
      tenantId,
      connectorType,
      ...(request.full ? { full: true } : {}),
    })
    const target = { tenantId, connectorType, runId: run.runId }
    try {
      progress('syncing')
      const result = await runPages(deps, {
        ...target,
        ...(request.pageSize ? { pageSize: request.pageSize } : {}),
        ...(request.signal ? { signal: request.signal } : {}),
        ...(request.stop ? { stop: request.stop } : {}),
        onPage: (page) => {
          addCounts(counts, page)
          progress('syncing')
        },
      })
      progress('finalizing')
      await finishRun(deps, target)
      progress('complete')
      return {
        runId: run.runId,
        status: 'succeeded',
        mode: run.mode,
        cursor: result.cursor,
        ...counts,
      }
    } catch (err) {
      // Stopped on request, wherever the signal caught it (between pages or in a request).
      const stopped = request.signal?.aborted === true || request.stop?.aborted === true
      const outcome = await failRun(deps, target, stopped ? cancelled() : err)
      progress('failed')
      return {
        runId: run.runId,
        status: outcome.runStatus,
        mode: run.mode,
        cursor: null,
        ...counts,
        error: outcome.message,
        errorCode: outcome.code,
        retryable: outcome.retryable,
      }
    }
  })
}

export interface RunTarget {
  tenantId: string
  connectorType: string
  runId: string
}

/**
 * Opens a sync_runs row (status running), marks the connection syncing and audits the trigger.
 * A full run clears the stored cursor in the same transaction, so a crashed full run resumes
 * where its last committed page left off rather than starting again.
 */
export async function startRun(
  deps: SyncDeps,
  request: { tenantId: string; connectorType: string; full?: boolean },
): Promise<{ runId: string; connectorId: string; mode: SyncMode }> {
  const { tenantId, connectorType } = request
  const connector = deps.registry.get(connectorType)
  const mode: SyncMode = request.full ? 'full' : 'incremental'
  return withTenant(deps.handle.db, tenantId, async (tx) => {
    const { row } = await openConnection(
      tx,
      deps.keyring,
      tenantId,
      connectorType,
      connector.secretConfigKeys,
    )
    // Only one run of a connection is ever live, so one still marked running belongs to a
    // process that died.
    await tx
      .update(syncRuns)
      .set({
        status: 'failed',
        finishedAt: sql`now()`,
        error:
          'Interrupted: the agent stopped before this run finished. A later run resumed from its last committed page.',
      })
      .where(and(eq(syncRuns.connectorId, row.id), eq(syncRuns.status, 'running')))
    const [run] = await tx
      .insert(syncRuns)
      .values({ tenantId, connectorId: row.id, mode })
      .returning({ id: syncRuns.id })
    await tx
      .update(connectors)
      .set({ status: 'syncing', updatedAt: sql`now()`, ...(request.full ? { cursor: null } : {}) })
      .where(eq(connectors.id, row.id))
    await recordAudit(tx, {
      tenantId,
      userId: deps.userId,
      action: 'sync.trigger',
      resource: 'connector',
      resourceId: row.id,
      metadata: { connectorType, mode, runId: run!.id },
    })
    return { runId: run!.id, connectorId: row.id, mode }
  })
}

export interface RunPagesRequest extends RunTarget {
  /** Stop after this many committed pages (a chunk); the run is then not done yet. */
  maxPages?: number
  pageSize?: number
  /** Aborts the vendor request in flight (and so the run). */
  signal?: AbortSignal
  /** Stops before the next page: the page in hand is finished and committed first. */
  stop?: AbortSignal
  /** After each committed page, with that page's counts and the committed cursor. */
  onPage?: (page: SyncCounts & { cursor: string | null }) => void
}

/**
 * Fetches and commits pages from the connection's last committed cursor until the source has
 * no more (done) or `maxPages` pages were committed.
 */
export async function runPages(
  deps: SyncDeps,
  request: RunPagesRequest,
): Promise<{ done: boolean; cursor: string | null; counts: SyncCounts }> {
  const { tenantId, connectorType, runId } = request
  const connector = deps.registry.get(connectorType)
  const start = await withTenant(deps.handle.db, tenantId, async (tx) => {
    const opened = await openConnection(
      tx,
      deps.keyring,
      tenantId,
      connectorType,
      connector.secretConfigKeys,
    )
    const [run] = await tx
      .select({ mode: syncRuns.mode })
      .from(syncRuns)
      .where(eq(syncRuns.id, runId))
    if (!run)
      throw new AppError('internal', `Sync run ${runId} does not exist for tenant "${tenantId}".`)
    const mappings = new Map<EntityType, FieldMapping[]>()
    for (const entityType of entityTypes) {
      mappings.set(entityType, await loadMappings(tx, connector, opened.row.id, entityType))
    }
    return { ...opened, mode: run.mode, mappings }
  })
  const runLog = deps.log.child({ tenantId, connector: connectorType, runId, mode: start.mode })
  const counts: SyncCounts = { pages: 0, created: 0, updated: 0, deleted: 0, errors: 0 }
  let cursor = start.row.cursor
  let credentials = start.credentials
  const hooks = credentialHooks(deps, { tenantId, connector, connectorId: start.row.id })
  const retries = retryRecorder(deps, { tenantId, runId }, runLog)
  const fetchOptions: Parameters<AnyConnector['sync']>[2] = {
    ...(start.mode === 'full' ? { full: true } : {}),
    ...(request.pageSize ? { pageSize: request.pageSize } : {}),
    ...(request.signal ? { signal: request.signal } : {}),
    ...(request.stop ? { stop: request.stop } : {}),
    log: runLog,
    // Token refreshes of one connection take turns across processes (rotation-safe).
    credentialLock: hooks.credentialLock,
    onCredentialsChanged: async (next) => {
      credentials = next
      await hooks.onCredentialsChanged(next)
    },
    onRetry: retries.onRetry,
  }
  try {
    return await pageLoop()
  } finally {
    await retries.flush()
  }

  async function pageLoop(): Promise<{ done: boolean; cursor: string | null; counts: SyncCounts }> {
    const fetchFrom = (from: string | null): Promise<SyncResult> => {
      const pending = fetchPage(connector, credentials, from, fetchOptions)
      // Awaited later; until then a failure must not count as unhandled.
      pending.catch(() => undefined)
      return pending
    }
    let pending = fetchFrom(cursor)
    // The prefetched page, mapped and checked as soon as it arrives (see below).
    let preparing: Promise<ReturnType<typeof prepareRecords>> | undefined
    for (;;) {
      if (request.signal?.aborted || request.stop?.aborted) throw cancelled()
      const page = await pending
      const prepared = preparing
      preparing = undefined
      if (page.hasMore && page.records.length === 0 && page.cursor === cursor) {
        throw new VendorError(
          'vendor_bad_response',
          `${connector.name} reported more data but returned an empty page without moving its cursor.`,
          { retryable: false },
        )
      }
      const chunkFull = request.maxPages !== undefined && counts.pages + 1 >= request.maxPages
      // The next page is fetched, then mapped and checked, while this one is written, so the
      // source, the transform and Postgres work at the same time. A failed prefetch (or a mapping
      // error in it) surfaces only after this page has committed.
      if (page.hasMore && !chunkFull) {
        pending = fetchFrom(page.cursor)
        preparing = pending.then((next) =>
          prepareRecords(next.records, (e) => start.mappings.get(e) ?? []),
        )
        preparing.catch(() => undefined)
      }
      const batches = prepared
        ? await prepared
        : prepareRecords(page.records, (e) => start.mappings.get(e) ?? [])
      const pageCounts = await withTenant(deps.handle.db, tenantId, (tx) =>
        persistPage(tx, {
          tenantId,
          connectorId: start.row.id,
          source: connectorType,
          runId,
          batches,
          cursor: page.cursor,
        }),
      )
      addCounts(counts, { pages: 1, ...pageCounts })
      runLog.debug({ page: counts.pages, ...pageCounts }, 'page committed')
      request.onPage?.({ pages: 1, ...pageCounts, cursor: page.cursor })
      if (!page.hasMore) return { done: true, cursor: page.cursor, counts }
      cursor = page.cursor
      if (chunkFull) return { done: false, cursor, counts }
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
  return withTenant(deps.handle.db, target.tenantId, async (tx) => {
    const [run] = await tx
      .update(syncRuns)
      .set({ status: 'succeeded', finishedAt: sql`now()` })
      .where(eq(syncRuns.id, target.runId))
      .returning()
    if (!run) throw new AppError('internal', `Sync run ${target.runId} does not exist.`)
    await tx
      .update(connectors)
      .set({
        status: 'connected',
        lastSyncAt: sql`now()`,
        lastSyncError: null,
        updatedAt: sql`now()`,
      })
      .where(eq(connectors.id, run.connectorId))
    deps.log.info(
      {
        tenantId: target.tenantId,
        connector: target.connectorType,
        runId: run.id,
        pages: run.pages,
      },
      'sync finished',
    )
    return {
      pages: run.pages,
      created: run.created,
      updated: run.updated,
      deleted: run.deleted,
      errors: run.errors,
    }
  })
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
      .set({ status: outcome.runStatus, finishedAt: sql`now()`, error: outcome.message })
      .where(eq(syncRuns.id, target.runId))
      .returning({ connectorId: syncRuns.connectorId })
    if (!run) return
    await tx
      .update(connectors)
      .set({
        status: outcome.connectorStatus,
        lastSyncError: outcome.connectorError,
        updatedAt: sql`now()`,
      })
      .where(eq(connectors.id, run.connectorId))
  })
  return outcome
}

function cancelled(): AppError {
  return new AppError(
    'sync_cancelled',
    'The sync was cancelled. The pages committed before it stopped are kept; the next sync resumes after them.',
  )
}

function addCounts(total: SyncCounts, more: SyncCounts): void {
  total.pages += more.pages
  total.created += more.created
  total.updated += more.updated
  total.deleted += more.deleted
  total.errors += more.errors
}

/** One page from the connector, its envelope checked and every record parsed. */
async function fetchPage(
  connector: AnyConnector,
  credentials: Credentials,
  cursor: string | null,
  options: Parameters<AnyConnector['sync']>[2],
): Promise<SyncResult> {
  const page = await connector.sync(credentials, cursor, options)
  if (!page || !Array.isArray(page.records) || typeof page.hasMore !== 'boolean') {
    throw new VendorError('vendor_bad_response', `${connector.name} returned a malformed page.`, {
      retryable: false,
    })
  }
  if (page.cursor !== null && typeof page.cursor !== 'string') {
    throw new VendorError(
      'vendor_bad_response',
      `${connector.name} returned a cursor that is not a string.`,
      {
        retryable: false,
      },
    )
  }
  for (const [index, record] of page.records.entries()) {
    const parsed = sourceRecordSchema.safeParse(record)
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      throw new VendorError(
        'vendor_bad_response',
        `${connector.name} returned a malformed record at position ${index}: ${issue?.path.join('.') ?? ''} ${issue?.message ?? ''}`.trim(),
        { retryable: false },
      )
    }
  }
  return page
}

export interface SyncOutcome {
  code: string
  message: string
  retryable: boolean
  runStatus: 'failed' | 'paused'
  connectorStatus: 'connected' | 'error'
  connectorError: string
}

/**
 * How a failure ends a run and what it means for the connection. Its messages are what is
 * stored (sync_runs.error, connectors.last_sync_error), logged and printed, so each is bounded
 * (boundedMessage) and a database failure is told by its code and server message alone.
 */
export function classifyFailure(err: unknown, vendor: string): SyncOutcome {
  const outcome = classify(err, vendor)
  return {
    ...outcome,
    message: boundedMessage(outcome.message),
    connectorError: boundedMessage(outcome.connectorError),
  }
}

/** A failure in one sentence, safe to store: never a statement or its parameters. */
function describeFailure(err: unknown): string {
  // Drizzle's own message is "Failed query: <sql> params: <every value of the page>".
  if (err instanceof AppError) return err.userMessage
  return err instanceof Error ? describePostgresError(err) : String(err)
}

function classify(err: unknown, vendor: string): SyncOutcome {
  const message = describeFailure(err)
  if (err instanceof AppError && err.code === 'sync_cancelled') {
    // Nothing is wrong with the connection: it stays connected and the next sync resumes.
    return {
      code: err.code,
      message,
      retryable: true,
      runStatus: 'failed',
      connectorStatus: 'connected',
      connectorError: message,
    }
  }
  if (err instanceof VendorError && err.code === 'vendor_auth_failed') {
    return {
      code: err.code,
      message,
      retryable: false,
      runStatus: 'failed',
      connectorStatus: 'error',
      connectorError: `needs re-auth: ${message}`,
    }
  }
  if (err instanceof VendorError && err.code === 'vendor_quota_exhausted') {
    return {
      code: err.code,
      message: `paused: API quota. ${message}`,
      retryable: true,
      runStatus: 'paused',
      connectorStatus: 'connected',
      connectorError: `paused: API quota. ${message}`,
    }
  }
  const retryable = err instanceof VendorError ? err.retryable : false
  const code = err instanceof AppError ? err.code : 'internal'
  return {
    code,
    message,
    retryable,
    runStatus: 'failed',
    // A transient failure leaves the connection usable; anything else needs an admin.
    connectorStatus: retryable ? 'connected' : 'error',
    connectorError: retryable ? `${vendor}: ${message}` : message,
  }
}

interface SyncLock {
  release(): Promise<void>
}

/** Runs `fn` holding the connection's sync lock; a second caller gets 'sync_in_progress'. */
export async function withSyncLock<T>(
  handle: DbHandle,
  tenantId: string,
  connectorType: string,
  fn: () => Promise<T>,
): Promise<T> {
  const lock = await acquireSyncLock(handle, tenantId, connectorType)
  try {
    return await fn()
  } finally {
    await lock.release()
  }
}

/** A session advisory lock per connection: two syncs of one connection never run at once. */
async function acquireSyncLock(
  handle: DbHandle,
  tenantId: string,
  connectorType: string,
): Promise<SyncLock> {
  const client = await handle.pool.connect()
  try {
    const res = await client.query<{ locked: boolean }>(
      `select pg_try_advisory_lock(hashtextextended($1, 0)) as locked`,
      [`sync:${tenantId}:${connectorType}`],
    )
    if (!res.rows[0]?.locked) {
      client.release()
      throw new AppError(
        'sync_in_progress',
        `A sync of ${connectorType} for tenant "${tenantId}" is already running.`,
      )
    }
  } catch (err) {
    if (err instanceof AppError) throw err
    client.release()
    throw err
  }
  return {
    release: async () => {
      try {
        await client.query(`select pg_advisory_unlock(hashtextextended($1, 0))`, [
          `sync:${tenantId}:${connectorType}`,
        ])
        client.release()
      } catch {
        // A broken connection drops its locks anyway.
        client.release(true)
      }
    },
  }
}
