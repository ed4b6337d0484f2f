/**
 * Salesforce REST reads through jsforce: describe, counts, query pages (following
 * `nextRecordsUrl`) checked against the `totalSize` Salesforce announced, and /limits.
 * https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_query.htm
 */
import type { z } from 'zod'
import { VendorError } from '../../../shared/errors.js'
import type { SyncObject } from './cursor.js'
import { describeSchema, limitsSchema, queryResultSchema, type DescribeResult } from './schemas.js'
import type { SalesforceSession } from './session.js'
import { queryUrl, selectableFields, type ObjectFields } from './soql.js'

/** Describes are cached this long per org, API version and object (fields rarely change). */
const DESCRIBE_TTL_MS = 10 * 60_000
const describeCache = new Map<string, { at: number; describe: DescribeResult }>()

/** GET /sobjects/{type}/describe, cached. */
export async function describeObject(
  session: SalesforceSession,
  object: string,
): Promise<DescribeResult> {
  const { instanceUrl, apiVersion } = session.credentials
  const key = `${instanceUrl}|${apiVersion}|${object}`
  const hit = describeCache.get(key)
  if (hit && Date.now() - hit.at < DESCRIBE_TTL_MS) return hit.describe
  const body = await session.request(`/sobjects/${encodeURIComponent(object)}/describe`)
  const describe = parse(describeSchema, body, `the ${object} describe`)
  describeCache.set(key, { at: Date.now(), describe })
  return describe
}

/** The fields a sync reads for one object. */
export async function objectFields(
  session: SalesforceSession,
  object: SyncObject,
): Promise<ObjectFields> {
  return selectableFields(object, await describeObject(session, object))
}

/** SELECT COUNT() of the object's live records. */
export async function countRecords(
  session: SalesforceSession,
  object: SyncObject,
): Promise<number> {
  const { instanceUrl, apiVersion } = session.credentials
  const body = await session.request(
    queryUrl(instanceUrl, apiVersion, `SELECT COUNT() FROM ${object}`, false),
  )
  return parse(queryResultSchema, body, `the ${object} count`).totalSize
}

export interface QueryPage {
  records: Array<Record<string, unknown>>
  /** What Salesforce announced for the query; equals records.length or the read throws. */
  totalSize: number
}

/**
 * Runs one query (queryAll when `all`) and follows `nextRecordsUrl` to its end. A read shorter
 * than the announced `totalSize`, or a batch that says "not done" without a next URL, throws
 * 'sync_incomplete': a short read must never pass for a complete one.
 */
export async function runQuery(
  session: SalesforceSession,
  soql: string,
  options: { all: boolean; batchSize: number; what: string },
): Promise<QueryPage> {
  const { instanceUrl, apiVersion } = session.credentials
  // Salesforce accepts 200–2,000 and may still send smaller batches for wide rows.
  const batchSize = Math.min(2000, Math.max(200, options.batchSize))
  const headers = { 'Sforce-Query-Options': `batchSize=${batchSize}` }
  let url = queryUrl(instanceUrl, apiVersion, soql, options.all)
  const records: Array<Record<string, unknown>> = []
  let totalSize: number | undefined
  for (;;) {
    session.throwIfAborted()
    const body = await session.request({ method: 'GET', url, headers })
    const batch = parse(queryResultSchema, body, options.what)
    totalSize ??= batch.totalSize
    records.push(...batch.records)
    if (batch.done) break
    if (!batch.nextRecordsUrl) {
      throw incomplete(
        `Salesforce said ${options.what} was not done but gave no next page (${records.length} of ${totalSize} records read).`,
      )
    }
    url = batch.nextRecordsUrl
  }
  if (records.length !== totalSize) {
    throw incomplete(
      `Salesforce announced ${totalSize} records for ${options.what} but sent ${records.length}. Nothing after the last complete page was saved; the next run reads it again.`,
    )
  }
  return { records, totalSize }
}

/** Daily API requests used and allowed, from GET /limits. */
export async function readLimits(
  session: SalesforceSession,
): Promise<{ used: number; max: number }> {
  const body = await session.request('/limits')
  const limits = parse(limitsSchema, body, 'the API limits')
  const { Max, Remaining } = limits.DailyApiRequests
  return { used: Math.max(0, Max - Remaining), max: Max }
}

export function incomplete(message: string): VendorError {
  return new VendorError('sync_incomplete', message, { retryable: true })
}

export function parse<T>(schema: z.ZodType<T>, body: unknown, what: string): T {
  const parsed = schema.safeParse(body)
  if (parsed.success) return parsed.data
  const issue = parsed.error.issues[0]
  throw new VendorError(
    'vendor_bad_response',
    `Salesforce sent ${what} in a shape we do not understand ("${issue?.path.join('.') ?? ''}": ${issue?.message ?? 'invalid'}).`,
    { retryable: false },
  )
}
