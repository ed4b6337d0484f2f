/**
 * One page of a Salesforce sync (see cursor.ts for the cursor). Each object is read with REST
 * keyset pages, or with a Bulk API 2.0 job when it is read from scratch and large, or when its
 * field list is too wide for a query URL. API usage is read from every response: once it passes
 * the quota threshold the page is still returned, and the next call pauses the run.
 */
import { VendorError } from '../../../shared/errors.js'
import type { SourceRecord, SyncResult, UnreadRecords } from '../../../shared/schemas.js'
import type { Credentials, SyncOptions } from '../interface.js'
import { createQueryJob, readResultPage, waitForJob, type ResultPage } from './bulk.js'
import {
  advance,
  comparePositions,
  passEnd,
  parseCursor,
  positionOf,
  serializeCursor,
  type BulkState,
  type Position,
  type SyncCursor,
} from './cursor.js'
import { salesforceError, toVendorError } from './errors.js'
import { countRecords, objectFields, readLimits, runQuery } from './fetch.js'
import { sourceRecordOf, toSourceRecord } from './map.js'
import type { SalesforceConfig } from './schemas.js'
import { SalesforceSession, parseStored } from './session.js'
import { streamObject } from './streams.js'
import { bulkQuery, fitsInUrl, keysetQuery, KEY_FIELDS, type ObjectFields } from './soql.js'

/**
 * Records per REST page (Salesforce's largest query batch) and per Bulk result page. Every page
 * costs the same fixed work (a result request, a transaction with its statements and commit), so
 * a Bulk page of 5,000 makes a full sync about a twentieth faster than one of 2,000. A larger page
 * costs memory: the pipeline holds up to three pages at once (one being written, the next
 * prepared, the one after read ahead). At 5,000 the agent's peak RSS is 215-220 MB, 20 MB more
 * than at 2,000 and flat from 390,000 records to 1,950,000; 10,000 was no faster and took 50 MB
 * more.
 */
export const DEFAULT_PAGE_SIZE = 2_000
export const DEFAULT_BULK_PAGE_SIZE = 5_000

/** Result reads that mean the job or its results no longer exist. */
const RESULTS_GONE = new Set([
  'NOT_FOUND',
  'ERROR_HTTP_404',
  'ERROR_HTTP_409',
  'INVALIDJOB',
  'INVALIDJOBSTATE',
  'INVALIDLOCATOR',
])

interface Step {
  records: SourceRecord[]
  /** A Bulk result page's records, still to be read out of its CSV (SyncResult.unread). */
  unread?: UnreadRecords
  cursor: SyncCursor
  passComplete: boolean
  /** The object's record count when this step learned it (a COUNT() or a Bulk job's). */
  expected?: number
}

interface Context {
  session: SalesforceSession
  config: SalesforceConfig
  pageSize: number
  bulkPageSize: number
  /** One page is wanted (SyncOptions.sample): REST only, no COUNT(), no Bulk job. */
  sample: boolean
  log: SyncOptions['log']
}

/** Reads the page of the stream's object after `cursorText` (null: from scratch). */
export async function syncPage(
  credentials: Credentials,
  cursorText: string | null,
  options: SyncOptions = {},
): Promise<SyncResult> {
  const config = parseStored(credentials)
  const session = new SalesforceSession(config, options)
  const ctx: Context = {
    session,
    config,
    pageSize: options.pageSize ?? DEFAULT_PAGE_SIZE,
    bulkPageSize: options.pageSize ?? DEFAULT_BULK_PAGE_SIZE,
    sample: options.sample === true,
    log: options.log,
  }
  const object = streamObject(options.stream)
  let cursor = parseCursor(cursorText, object)
  try {
    if (cursor.quota) {
      await ensureQuota(session, config.quotaThreshold)
      const { quota: _quota, ...rest } = cursor
      cursor = rest
    }
    const records: SourceRecord[] = []
    let unread: UnreadRecords | undefined
    let passComplete = false
    let expected: number | undefined
    // Steps that read nothing (a Bulk job's results gone) are followed at once.
    for (;;) {
      session.throwIfAborted()
      const step = await readStep(ctx, cursor)
      records.push(...step.records)
      unread = step.unread
      cursor = step.cursor
      expected = step.expected ?? expected
      if (step.passComplete) {
        passComplete = true
        break
      }
      if (records.length > 0 || unread || overQuota(session, config.quotaThreshold)) break
    }
    const usage = session.usage()
    if (usage && usage.used / usage.max >= config.quotaThreshold)
      cursor = { ...cursor, quota: usage }
    ctx.log?.debug(
      {
        records: records.length + (unread?.count ?? 0),
        object,
        bulk: cursor.bulk?.jobId,
        apiUsage: usage,
      },
      'salesforce page read',
    )
    return {
      records,
      ...(unread ? { unread } : {}),
      cursor: serializeCursor(cursor),
      hasMore: !passComplete,
      syncedAt: new Date(),
      stats: { created: 0, updated: 0, errors: 0 },
      ...(expected !== undefined ? { expected } : {}),
    }
  } catch (err) {
    if (options.signal?.aborted) throw err
    throw toVendorError(err, 'reading records', session)
  }
}

/** Whether usage has passed the threshold: the run pauses before its next request. */
function overQuota(session: SalesforceSession, threshold: number): boolean {
  const usage = session.usage()
  return usage !== undefined && usage.used / usage.max >= threshold
}

/** Throws 'vendor_quota_exhausted' while the daily API usage is still past the threshold. */
async function ensureQuota(session: SalesforceSession, threshold: number): Promise<void> {
  const usage = await readLimits(session)
  if (usage.used / usage.max < threshold) return
  const pct = Math.round((usage.used / usage.max) * 100)
  throw new VendorError(
    'vendor_quota_exhausted',
    `Salesforce API usage is at ${pct}% of the daily limit (${usage.used} of ${usage.max} requests), past the ${Math.round(threshold * 100)}% threshold. The sync continues from where it stopped on a later run.`,
    { retryable: true },
  )
}

async function readStep(ctx: Context, cursor: SyncCursor): Promise<Step> {
  const { session, config } = ctx
  const object = cursor.object
  const fields = await objectFields(session, object)
  if (cursor.bulk) return readBulkPage(ctx, cursor, cursor.bulk, fields)
  const position = cursor.position
  const soql = keysetQuery({ object, fields: fields.fields, position, limit: ctx.pageSize })
  const wide = !fitsInUrl(config.instanceUrl, config.apiVersion, soql)
  // From scratch, the count picks REST or Bulk and is the progress bar's end (live records:
  // queryAll also reads the recycle bin, so a pass can read a few more).
  const count =
    !wide && position === null && !ctx.sample ? await countRecords(session, object) : undefined
  const large = count !== undefined && count >= config.bulkMinRecords
  if ((wide || large) && !ctx.sample) {
    const bulk = await startBulk(ctx, fields, position)
    if (bulk) return readBulkPage(ctx, { ...cursor, bulk }, bulk, fields)
  }
  const step = await readRestPage(
    ctx,
    cursor,
    wide ? fitFields(ctx, fields, position) : fields,
    position,
  )
  return count === undefined ? step : { ...step, expected: count }
}

/** The next keyset page over REST (queryAll, so deletions arrive as IsDeleted records). */
async function readRestPage(
  ctx: Context,
  cursor: SyncCursor,
  fields: ObjectFields,
  position: Position | null,
): Promise<Step> {
  const { object } = fields
  const soql = keysetQuery({ object, fields: fields.fields, position, limit: ctx.pageSize })
  const startedAt = Date.now()
  const page = await runQuery(ctx.session, soql, {
    all: true,
    batchSize: ctx.pageSize,
    what: `the ${object} query`,
  })
  const last = page.records.at(-1)
  const reached = last ? positionOf(last) : position
  if (last && !reached) {
    throw new VendorError(
      'vendor_bad_response',
      `Salesforce sent a ${object} record without Id or SystemModstamp.`,
      { retryable: false },
    )
  }
  const records = page.records.map((record) => toSourceRecord(object, record))
  if (page.records.length < ctx.pageSize) {
    const lookbackMs = ctx.config.lookbackSeconds * 1000
    // The server's time of this read: now, less the time the query took.
    const read = last ? reached : null
    const settling = lookbackMs > 0 && (read ?? position)?.id
    const readAt = settling ? await serverTimeOfRead(ctx, startedAt) : undefined
    const end = passEnd(position, read, readAt, lookbackMs)
    return { records, cursor: advance(cursor, end), passComplete: true }
  }
  if (position && reached && comparePositions(reached, position) <= 0) {
    throw new VendorError(
      'vendor_bad_response',
      `Salesforce returned a full ${object} page that does not move past ${position.stamp} / ${position.id ?? ''}.`,
      { retryable: false },
    )
  }
  return { records, cursor: advance(cursor, reached), passComplete: false }
}

/** Salesforce's clock when a query that started locally at `startedAt` ran (or undefined). */
async function serverTimeOfRead(ctx: Context, startedAt: number): Promise<number | undefined> {
  const server = await ctx.session.serverTime()
  return server === undefined ? undefined : server - (Date.now() - startedAt)
}

/** Creates and waits for a Bulk job; null when the object cannot be read with Bulk. */
async function startBulk(
  ctx: Context,
  fields: ObjectFields,
  position: Position | null,
): Promise<BulkState | null> {
  const { session, config } = ctx
  const { object } = fields
  const query = bulkQuery({ object, fields: fields.fields, position })
  for (let started = 1; ; started++) {
    const job = await createQueryJob(session, query)
    if (!job) {
      ctx.log?.info(
        { object },
        'salesforce bulk query not supported for this object; reading over REST',
      )
      return null
    }
    ctx.log?.info({ object, jobId: job.id }, 'salesforce bulk query job created')
    try {
      const done = await waitForJob(session, job.id, {
        intervalMs: config.bulkPollIntervalMs,
        timeoutMs: config.bulkPollTimeoutMs,
        object,
      })
      return {
        jobId: job.id,
        locator: null,
        read: 0,
        expected: done.numberRecordsProcessed,
        since: new Date(Date.parse(job.createdDate)).toISOString(),
      }
    } catch (err) {
      // A job Salesforce no longer knows while it works (deleted from Setup or by another
      // tool) is started again, as a read whose results are gone is; a few times at most.
      const { code } = salesforceError(err)
      if (!RESULTS_GONE.has(code) || started >= MAX_BULK_JOB_STARTS) throw err
      ctx.log?.warn({ object, jobId: job.id, code }, 'salesforce bulk job gone; starting a new one')
    }
  }
}

/** Jobs started for one read of an object when each one vanishes while it works. */
const MAX_BULK_JOB_STARTS = 3

/**
 * One page of a finished Bulk job. After the last page the object's position becomes the job's
 * start, so the next pass re-reads whatever changed while the job ran.
 */
async function readBulkPage(
  ctx: Context,
  cursor: SyncCursor,
  bulk: BulkState,
  fields: ObjectFields,
): Promise<Step> {
  let page: ResultPage
  try {
    page = await readResultPage(ctx.session, {
      jobId: bulk.jobId,
      locator: bulk.locator,
      maxRecords: ctx.bulkPageSize,
      types: fields.types,
    })
  } catch (err) {
    // Salesforce keeps results for days, not forever (a long quota pause can outlast them):
    // the object is read again with a new job; rows already saved are simply upserted again.
    const { code } = salesforceError(err)
    if (!RESULTS_GONE.has(code)) throw err
    ctx.log?.warn(
      { object: cursor.object, jobId: bulk.jobId, code },
      'salesforce bulk results gone; reading the object again',
    )
    return { records: [], cursor: advance(cursor, null), passComplete: false }
  }
  const { rows } = page
  const toRecords = (max: number) => rows.read(max).map((row) => sourceRecordOf(cursor.object, row))
  // The rows become source records as the pipeline reads them, a slice at a time. The job's
  // last page is read now (one row more than it announced, so that a longer one fails too), so
  // that the rows counted against the job's are the rows it held.
  const records: Pick<Step, 'records' | 'unread'> =
    page.next === null
      ? { records: toRecords(rows.count + 1) }
      : { records: [], unread: { count: rows.count, read: toRecords } }
  const read = bulk.read + rows.count
  if (page.next !== null) {
    return {
      ...records,
      cursor: { ...cursor, bulk: { ...bulk, locator: page.next, read } },
      passComplete: false,
      expected: bulk.expected,
    }
  }
  if (read !== bulk.expected) {
    throw new VendorError(
      'sync_incomplete',
      `Salesforce's Bulk query job ${bulk.jobId} for ${cursor.object} reported ${bulk.expected} records but its results held ${read}. Nothing after the last complete page was saved.`,
      { retryable: true },
    )
  }
  ctx.log?.info(
    { object: cursor.object, jobId: bulk.jobId, records: read },
    'salesforce bulk query read',
  )
  // Changes made while the job ran are read again from its start, and changes in flight when
  // it started (stamped up to the look-back before it) from before that.
  const from = Date.parse(bulk.since) - ctx.config.lookbackSeconds * 1000
  const end = { stamp: new Date(from).toISOString(), id: null }
  return { ...records, cursor: advance(cursor, end), passComplete: true, expected: bulk.expected }
}

/**
 * The longest field list whose query fits in a URL, for an object Bulk cannot read: the key
 * fields always, the rest in describe order. The omitted fields are logged by count.
 */
function fitFields(ctx: Context, fields: ObjectFields, position: Position | null): ObjectFields {
  const fits = (n: number): boolean =>
    fitsInUrl(
      ctx.config.instanceUrl,
      ctx.config.apiVersion,
      keysetQuery({
        object: fields.object,
        fields: fields.fields.slice(0, n),
        position,
        limit: ctx.pageSize,
      }),
    )
  let lo: number = KEY_FIELDS.length
  let hi = fields.fields.length
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2)
    if (fits(mid)) lo = mid
    else hi = mid - 1
  }
  ctx.log?.warn(
    { object: fields.object, omitted: fields.fields.length - lo },
    'salesforce field list too wide for a query URL and Bulk refused the object; reading fewer fields',
  )
  return { ...fields, fields: fields.fields.slice(0, lo) }
}
