/**
 * Bulk API 2.0 query jobs, for reading large objects from scratch and field lists too wide for a
 * query URL. We create and poll the job and read each result page by locator ourselves, so every
 * page is one pipeline page and the cursor can resume at any locator.
 * https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/queries.htm
 */
import { AppError, VendorError } from '../../../shared/errors.js'
import { setOwn } from '../../../shared/own.js'
import { wait } from '../retry.js'
import { salesforceError } from './errors.js'
import { incomplete, parse } from './fetch.js'
import { jobInfoSchema, type JobInfo } from './schemas.js'
import type { SalesforceSession } from './session.js'

export interface BulkPollOptions {
  /** The longest wait between two polls (see pollDelay). */
  intervalMs: number
  timeoutMs: number
  /** For messages: the object being read. */
  object: string
}

/**
 * Creates a queryAll job (deleted rows included, like the REST reads). Returns null when
 * Salesforce does not support Bulk queries on this object, so the caller can use REST.
 */
export async function createQueryJob(
  session: SalesforceSession,
  soql: string,
): Promise<JobInfo | null> {
  try {
    const body = await session.request({
      method: 'POST',
      url: jobsUrl(session),
      body: JSON.stringify({
        operation: 'queryAll',
        query: soql,
        contentType: 'CSV',
        columnDelimiter: 'COMMA',
        lineEnding: 'LF',
      }),
      headers: { 'content-type': 'application/json; charset=utf-8' },
    })
    return parse(jobInfoSchema, body, 'a Bulk query job')
  } catch (err) {
    const { code, message } = salesforceError(err)
    if (code === 'INVALIDENTITY' || /not supported by the Bulk API/i.test(message)) return null
    throw err
  }
}

/** The first wait before polling a job again, unless the longest wait is shorter. */
export const FIRST_POLL_MS = 100
/** Each wait is this much longer than the one before, up to the longest. */
export const POLL_BACKOFF = 1.5

/**
 * The wait before poll `n + 1` (n ≥ 1 polls done): short at first, since most jobs of an
 * incremental or mid-sized read finish in well under a second, then growing by POLL_BACKOFF up
 * to `maxMs`, so a job that runs for minutes costs few requests of the daily allowance.
 */
export function pollDelay(n: number, maxMs: number): number {
  const first = Math.min(FIRST_POLL_MS, maxMs)
  return Math.min(maxMs, Math.round(first * POLL_BACKOFF ** Math.max(0, n - 1)))
}

/**
 * Polls the job until JobComplete (UploadComplete and InProgress mean "still working"), waiting
 * pollDelay between polls. A Failed or Aborted job, or one still running after `timeoutMs` (it
 * is then aborted), throws a VendorError naming the job; the run fails and the next run starts
 * a new job.
 */
export async function waitForJob(
  session: SalesforceSession,
  jobId: string,
  options: BulkPollOptions,
): Promise<JobInfo & { numberRecordsProcessed: number }> {
  const deadline = Date.now() + options.timeoutMs
  for (let polls = 1; ; polls++) {
    session.throwIfAborted()
    const info = parse(
      jobInfoSchema,
      await session.request(`${jobsUrl(session)}/${jobId}`),
      'a Bulk query job status',
    )
    if (info.state === 'JobComplete') {
      return { ...info, numberRecordsProcessed: info.numberRecordsProcessed ?? 0 }
    }
    if (info.state === 'Failed' || info.state === 'Aborted') {
      const reason = info.errorMessage ? `: ${info.errorMessage}` : ''
      throw new VendorError(
        'vendor_bad_response',
        `Salesforce's Bulk query job ${jobId} for ${options.object} ended ${info.state}${reason}. Nothing from it was saved; the next run starts a new job.`,
        { retryable: true },
      )
    }
    if (Date.now() >= deadline) {
      await abortJob(session, jobId)
      throw new VendorError(
        'vendor_unavailable',
        `Salesforce's Bulk query job ${jobId} for ${options.object} was still ${info.state} after ${duration(options.timeoutMs)}, so it was aborted. The next run starts a new job.`,
        { retryable: true },
      )
    }
    const waited = await wait(
      Math.min(pollDelay(polls, options.intervalMs), Math.max(0, deadline - Date.now())),
      session.options.signal,
      session.options.stop,
    )
    if (!waited) {
      // Stopped while Salesforce works: the job is dropped (the next run starts a new one).
      await abortJob(session, jobId)
      throw new AppError(
        'sync_cancelled',
        `Stopped while waiting for Salesforce's Bulk query job ${jobId} for ${options.object}; the job was aborted.`,
      )
    }
  }
}

export interface ResultPage {
  /** The page's rows, read out of its CSV as records when asked for (see ResultRows). */
  rows: ResultRows
  /** The next page's locator, or null after the last page (Salesforce sends the string "null"). */
  next: string | null
}

/** A result page's rows as REST-shaped records, parsed out of its CSV a slice at a time. */
export interface ResultRows {
  /** How many rows the page holds: its Sforce-NumberOfRecords, else the rows counted. */
  readonly count: number
  /**
   * The next rows, at most `max`; none once all were read. Throws 'sync_incomplete' when the
   * CSV holds more or fewer rows than Sforce-NumberOfRecords announced.
   */
  read(max: number): Array<Record<string, unknown>>
}

/**
 * One page of results: GET …/jobs/query/{id}/results?locator=&maxRecords=. Each page is a CSV
 * with its own header row; values become REST-typed by the describe types (numbers, booleans,
 * null for empty cells). A row count that disagrees with Sforce-NumberOfRecords throws once the
 * rows are read (ResultRows).
 *
 * As soon as a page has arrived, the next one is requested (see readAhead), so Salesforce sends
 * it while this one is parsed and written; the next call takes that response instead of asking
 * again.
 */
export async function readResultPage(
  session: SalesforceSession,
  input: { jobId: string; locator: string | null; maxRecords: number; types: Map<string, string> },
): Promise<ResultPage> {
  const url = resultsUrl(session, input)
  const get = () => requestText(session, { method: 'GET', url, headers: { accept: 'text/csv' } })
  // A read-ahead went through the retry policy like any request: its failure is this page's.
  const { body, headers } = await (takeReadAhead(session, input.jobId, url) ?? get())
  const next = headers['sforce-locator']
  // A page of one record is the pipeline's look at a stream before its run starts
  // (pipeline/read-ahead.ts): the run goes on at its own page size, so a next page of one
  // record would never be taken, only paid for out of the org's daily API allowance.
  if (next !== undefined && next !== 'null' && next !== '' && input.maxRecords > 1) {
    startReadAhead(session, input.jobId, resultsUrl(session, { ...input, locator: next }))
  }
  const locator = headers['sforce-locator']
  if (locator === undefined) {
    throw new VendorError(
      'vendor_bad_response',
      `A Bulk result page of job ${input.jobId} had no Sforce-Locator header.`,
      { retryable: false },
    )
  }
  return {
    rows: resultRows(body, input, headers['sforce-numberofrecords']),
    next: locator === 'null' || locator === '' ? null : locator,
  }
}

/**
 * The rows of one result page's CSV (`text`), read out as records on demand, so that a page's
 * records need not all exist at once. Without a row count announced, they are read at once to be
 * counted.
 */
function resultRows(
  text: string,
  input: { jobId: string; types: Map<string, string> },
  announcedHeader: string | undefined,
): ResultRows {
  const csv = new CsvCursor(text)
  const cells: string[] = []
  const recordOf = recordReader(csv.next(cells) ? cells.slice() : [], input.types)
  const announced = announcedHeader === undefined ? Number.NaN : Number(announcedHeader)
  if (!Number.isSafeInteger(announced) || announced < 0) {
    const records: Array<Record<string, unknown>> = []
    while (csv.next(cells)) records.push(recordOf(cells))
    let taken = 0
    return {
      count: records.length,
      read: (max) => {
        const slice = records.slice(taken, taken + max)
        taken += slice.length
        return slice
      },
    }
  }
  let taken = 0
  return {
    count: announced,
    read: (max) => {
      const records: Array<Record<string, unknown>> = []
      while (records.length < max && csv.next(cells)) records.push(recordOf(cells))
      taken += records.length
      if (taken > announced || (records.length < max && taken < announced)) {
        while (csv.next(cells)) taken++
        throw incomplete(
          `A Bulk result page of job ${input.jobId} announced ${announced} rows but held ${taken}.`,
        )
      }
      return records
    },
  }
}

interface TextResponse {
  body: string
  headers: Record<string, string>
}

/**
 * The result page requested ahead, per job (at most one each): its URL and the response on its
 * way. One page of one job is all it ever holds; an entry not taken within READ_AHEAD_TTL_MS (the
 * run stopped) is dropped.
 */
const readAhead = new Map<string, { url: string; at: number; response: Promise<TextResponse> }>()
const READ_AHEAD_TTL_MS = 60_000

function readAheadKey(session: SalesforceSession, jobId: string): string {
  return `${session.credentials.instanceUrl}|${jobId}`
}

function startReadAhead(session: SalesforceSession, jobId: string, url: string): void {
  const response = requestText(session, { method: 'GET', url, headers: { accept: 'text/csv' } })
  // Awaited by the next page's call; until then a failure must not count as unhandled.
  response.catch(() => undefined)
  readAhead.set(readAheadKey(session, jobId), { url, at: Date.now(), response })
}

/** The response requested ahead for exactly this URL, if any; the job's entry is used up. */
function takeReadAhead(
  session: SalesforceSession,
  jobId: string,
  url: string,
): Promise<TextResponse> | undefined {
  const now = Date.now()
  for (const [key, entry] of readAhead) {
    if (now - entry.at > READ_AHEAD_TTL_MS) readAhead.delete(key)
  }
  const key = readAheadKey(session, jobId)
  const entry = readAhead.get(key)
  readAhead.delete(key)
  return entry?.url === url ? entry.response : undefined
}

function resultsUrl(
  session: SalesforceSession,
  input: { jobId: string; locator: string | null; maxRecords: number },
): string {
  const query = new URLSearchParams({ maxRecords: String(input.maxRecords) })
  if (input.locator) query.set('locator', input.locator)
  return `${jobsUrl(session)}/${input.jobId}/results?${query.toString()}`
}

/** Aborts a job, ignoring failures (it may have finished meanwhile). */
export async function abortJob(session: SalesforceSession, jobId: string): Promise<void> {
  try {
    await session.request({
      method: 'PATCH',
      url: `${jobsUrl(session)}/${jobId}`,
      body: JSON.stringify({ state: 'Aborted' }),
      headers: { 'content-type': 'application/json; charset=utf-8' },
    })
  } catch {
    // Best effort: an unfinished job expires on its own.
  }
}

/**
 * RFC 4180 CSV (comma, LF or CRLF, quoted fields may hold commas, quotes and newlines). Cells are
 * cut with indexOf and slice rather than built a character at a time: a result page is megabytes.
 */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = []
  const csv = new CsvCursor(text)
  const row: string[] = []
  while (csv.next(row)) rows.push(row.slice())
  return rows
}

/** Reads CSV text (as parseCsv describes it) one row at a time. */
class CsvCursor {
  readonly #text: string
  #at = 0

  constructor(text: string) {
    this.#text = text
  }

  /** Reads the next row's cells into `row`, emptied first; false once the text is read. */
  next(row: string[]): boolean {
    row.length = 0
    const text = this.#text
    const n = text.length
    let i = this.#at
    if (i >= n) return false
    for (;;) {
      let cell = ''
      if (text.charCodeAt(i) === QUOTE) {
        let from = i + 1
        for (;;) {
          const quote = text.indexOf('"', from)
          if (quote === -1) {
            cell += text.slice(from)
            i = n
            break
          }
          if (text.charCodeAt(quote + 1) === QUOTE) {
            cell += text.slice(from, quote + 1)
            from = quote + 2
            continue
          }
          cell += text.slice(from, quote)
          i = quote + 1
          break
        }
      }
      let end = i
      while (end < n) {
        const c = text.charCodeAt(end)
        if (c === COMMA || c === LF || c === CR) break
        end++
      }
      if (end > i) cell += text.slice(i, end)
      row.push(cell)
      i = end
      if (i < n && text.charCodeAt(i) === COMMA) {
        i++
        if (i < n) continue
        // A comma that ends the text ends the row with an empty cell.
        row.push('')
      } else if (i < n) {
        i += text.charCodeAt(i) === CR && text.charCodeAt(i + 1) === LF ? 2 : 1
      }
      this.#at = i
      return true
    }
  }
}

const QUOTE = 34
const COMMA = 44
const LF = 10
const CR = 13

/** One CSV row as a REST-shaped record: typed values, `Account.Name` columns nested. */
export function toRecord(
  header: readonly string[],
  row: readonly string[],
  types: Map<string, string>,
): Record<string, unknown> {
  return recordReader(header, types)(row)
}

/**
 * Turns the rows of one result page into REST-shaped records; the header's column paths and
 * types are worked out once per page, not once per cell.
 */
export function recordReader(header: readonly string[], types: Map<string, string>): RecordReader {
  const columns = header.map((column) => ({ path: column.split('.'), type: types.get(column) }))
  // Every page of a job has the same header: its reader is compiled once, not once per page
  // (V8 optimizes each compiled function anew, which costs more than the page's rows).
  const key = JSON.stringify(columns)
  let reader = readers.get(key)
  if (reader === undefined) {
    reader = literalReader(columns) ?? assigningReader(columns)
    if (readers.size >= MAX_READERS) readers.delete(readers.keys().next().value!)
    readers.set(key, reader)
  }
  return reader
}

/** Readers by header and column types, the oldest dropped first past MAX_READERS. */
const readers = new Map<string, RecordReader>()
const MAX_READERS = 64

interface Column {
  path: string[]
  type: string | undefined
}

/**
 * A reader that builds each record with one object literal compiled for the page's header. Set
 * one key at a time, a record of twenty fields or more (most Salesforce objects) turns
 * into a hash table, which costs memory and time at every later read of it (mapping, checks, its
 * JSON); a literal gives every record of the page one fixed shape. The header's names go into the
 * code only as JSON string literals. Undefined when the header does not make one tree of names (a
 * name twice, a column that is also another's parent, a `__proto__`): assigningReader takes those.
 */
function literalReader(columns: readonly Column[]): RecordReader | undefined {
  interface Branch {
    children: Map<string, Branch | number>
  }
  const root: Branch = { children: new Map() }
  for (const [index, { path }] of columns.entries()) {
    let branch = root
    for (const [depth, segment] of path.entries()) {
      if (segment === '__proto__') return undefined
      const existing = branch.children.get(segment)
      if (depth === path.length - 1) {
        if (existing !== undefined) return undefined
        branch.children.set(segment, index)
        continue
      }
      if (typeof existing === 'number') return undefined
      const next = existing ?? { children: new Map() }
      branch.children.set(segment, next)
      branch = next
    }
  }
  const literal = (branch: Branch): string =>
    `{${[...branch.children]
      .map(([name, node]) => {
        const value =
          typeof node === 'number'
            ? `${cellReader(columns[node]!.type)}(row[${node}])`
            : literal(node)
        return `${JSON.stringify(name)}: ${value}`
      })
      .join(', ')}}`
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- names go in as JSON literals only
  const compile = new Function('text', 'flag', 'number', `return (row) => (${literal(root)})`) as (
    text: CellReader,
    flag: CellReader,
    number: CellReader,
  ) => RecordReader
  return compile(textCell, flagCell, numberCell)
}

type RecordReader = (row: readonly string[]) => Record<string, unknown>
type CellReader = (cell: string | undefined) => unknown

/** The reader for headers literalReader does not take: each record built one key at a time. */
function assigningReader(columns: readonly Column[]): RecordReader {
  return (row) => {
    const record: Record<string, unknown> = {}
    for (let index = 0; index < columns.length; index++) {
      const { path, type } = columns[index]!
      let target = record
      for (let depth = 0; depth < path.length - 1; depth++) {
        const segment = path[depth]!
        const next = Object.hasOwn(target, segment) ? target[segment] : undefined
        if (next === null || typeof next !== 'object') setOwn(target, segment, {})
        target = target[segment] as Record<string, unknown>
      }
      setOwn(target, path[path.length - 1]!, typed(row[index] ?? '', type))
    }
    return record
  }
}

/** The name of the cell function literalReader's code calls for a column of this type. */
function cellReader(type: string | undefined): 'text' | 'flag' | 'number' {
  switch (type) {
    case 'boolean':
      return 'flag'
    case 'int':
    case 'double':
    case 'currency':
    case 'percent':
      return 'number'
    default:
      return 'text'
  }
}

// typed() for one kind of column each; a missing cell (a short row) reads as an empty one.
const textCell: CellReader = (cell) => typed(cell ?? '', undefined)
const flagCell: CellReader = (cell) => typed(cell ?? '', 'boolean')
const numberCell: CellReader = (cell) => typed(cell ?? '', 'double')

function typed(cell: string, type: string | undefined): unknown {
  if (cell === '') return null
  switch (type) {
    case 'boolean':
      return cell === 'true'
    case 'int':
    case 'double':
    case 'currency':
    case 'percent': {
      const n = Number(cell)
      return Number.isFinite(n) ? n : cell
    }
    default:
      return cell
  }
}

function jobsUrl(session: SalesforceSession): string {
  const { instanceUrl, apiVersion } = session.credentials
  return `${instanceUrl.replace(/\/$/, '')}/services/data/v${apiVersion}/jobs/query`
}

/**
 * A request through the connection (so 401 refreshes and Sforce-Limit-Info apply) that keeps the
 * raw body and the response headers: jsforce's request() returns only a parsed body, so the
 * transport is wrapped to see the last response.
 */
async function requestText(
  session: SalesforceSession,
  request: { method: 'GET'; url: string; headers: Record<string, string> },
): Promise<TextResponse> {
  let headers: Record<string, string> = {}
  const transport = session.conn._transport
  const capturing = {
    httpRequest(
      req: Parameters<typeof transport.httpRequest>[0],
      options?: Parameters<typeof transport.httpRequest>[1],
    ) {
      const pending = transport.httpRequest(req, options)
      void pending.then(
        (res) => {
          headers = res.headers
        },
        () => undefined,
      )
      return pending
    },
  }
  const body = await session.request<string>(request, {
    transport: capturing,
    responseType: 'text/plain',
  })
  return { body: typeof body === 'string' ? body : String(body), headers }
}

function duration(ms: number): string {
  if (ms < 1_000) return `${ms} ms`
  if (ms < 120_000) return `${Math.round(ms / 1_000)} s`
  return `${Math.round(ms / 60_000)} min`
}
