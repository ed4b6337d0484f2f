/**
 * Writing scores back to Salesforce with sObject Collections: PATCH /composite/sobjects, at most
 * 200 records per request, allOrNone false, one SaveResult per record.
 * https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections_update.htm
 */
import { z } from 'zod'
import type { WritebackFieldMapping } from '../../../shared/schemas.js'
import type {
  Credentials,
  WritebackCapability,
  WritebackItem,
  WritebackOptions,
  WritebackPreview,
  WritebackResult,
} from '../interface.js'
import { TRANSIENT, toVendorError } from './errors.js'
import { parse, runQuery } from './fetch.js'
import { saveResultSchema } from './schemas.js'
import { SalesforceSession, parseStored, type SessionOptions } from './session.js'
import { soqlString } from './soql.js'

/** Salesforce's limit per sObject Collections request. */
export const WRITEBACK_BATCH_SIZE = 200

/** The score fields GTM Clarity's Salesforce package adds to Account, Contact and Lead. */
const SCORE_FIELDS: WritebackFieldMapping[] = [
  { canonicalField: 'combinedScore', targetField: 'GTM_Score__c' },
  { canonicalField: 'tier', targetField: 'GTM_Tier__c' },
  { canonicalField: 'scoredAt', targetField: 'GTM_Scored_At__c' },
]

/** Writeback options; a credential lock, when given, makes token refreshes single-flight. */
export type SalesforceWritebackOptions = WritebackOptions & Pick<SessionOptions, 'credentialLock'>

export const salesforceWriteback = {
  maxBatchSize: WRITEBACK_BATCH_SIZE,
  // Accounts are scored out of the box; people (Contacts and Leads) once an admin enables them.
  defaults: {
    account: { enabled: true, fieldMap: SCORE_FIELDS },
    person: { enabled: false, fieldMap: SCORE_FIELDS },
  },
  send: sendWriteback,
  preview: previewWriteback,
  checkItem(item: WritebackItem) {
    return objectTypeOf(item) ? undefined : unsupported(item)
  },
  checkTargetField(field: string) {
    if (field === 'Id') return 'Id identifies the record and cannot be written.'
    if (field.endsWith('__r')) return `${field} is a relationship, not a field.`
    if (field.length > 80) return `${field} is longer than a Salesforce field name can be.`
    return undefined
  },
} satisfies WritebackCapability

/**
 * Sends updates in requests of at most 200 records and answers per item. A request that fails as
 * a whole (auth, quota, outage) throws; record-level errors come back as results, retryable when
 * Salesforce's code says the record was only busy.
 */
export async function sendWriteback(
  credentials: Credentials,
  items: WritebackItem[],
  options: SalesforceWritebackOptions = {},
): Promise<WritebackResult[]> {
  const session = new SalesforceSession(parseStored(credentials), options)
  const results: WritebackResult[] = []
  for (let start = 0; start < items.length; start += WRITEBACK_BATCH_SIZE) {
    session.throwIfAborted()
    const chunk = items.slice(start, start + WRITEBACK_BATCH_SIZE)
    const planned = chunk.map((item) => ({ item, ...toSalesforce(item) }))
    const sendable = planned.filter((p) => p.record !== undefined)
    const saved = new Map<(typeof planned)[number], WritebackResult>()
    if (sendable.length > 0) {
      let body: unknown
      try {
        body = await session.request({
          method: 'PATCH',
          url: `${dataUrl(session)}/composite/sobjects`,
          body: JSON.stringify({ allOrNone: false, records: sendable.map((p) => p.record) }),
          headers: { 'content-type': 'application/json' },
        })
      } catch (err) {
        if (options.signal?.aborted) throw err
        throw toVendorError(err, 'writing records back', session)
      }
      const answers = parse(z.array(saveResultSchema), body, 'the writeback results')
      // Results come back in request order; ids can be missing on failures.
      sendable.forEach((p, index) => saved.set(p, toResult(p.item.externalId, answers[index])))
    }
    for (const p of planned) {
      results.push(
        p.error !== undefined
          ? { externalId: p.item.externalId, ok: false, error: p.error, retryable: false }
          : saved.get(p)!,
      )
    }
    options.log?.debug(
      { sent: sendable.length, failed: results.filter((r) => !r.ok).length },
      'salesforce writeback batch',
    )
  }
  return results
}

/**
 * A dry run: what each item would change, from the values Salesforce holds now (read with
 * `SELECT Id, <fields> … WHERE Id IN (…)`, 200 ids per query). Nothing is written.
 */
export async function previewWriteback(
  credentials: Credentials,
  items: WritebackItem[],
  options: SalesforceWritebackOptions = {},
): Promise<WritebackPreview[]> {
  const session = new SalesforceSession(parseStored(credentials), options)
  const planned = items.map((item) => ({ item, ...toSalesforce(item) }))
  const current = new Map<string, Record<string, unknown>>()
  const byType = new Map<string, Array<(typeof planned)[number]>>()
  for (const p of planned) {
    if (!p.record) continue
    const list = byType.get(p.record.attributes.type) ?? []
    list.push(p)
    byType.set(p.record.attributes.type, list)
  }
  try {
    for (const [type, list] of byType) {
      const fields = [...new Set(list.flatMap((p) => Object.keys(p.values)))]
      for (let start = 0; start < list.length; start += WRITEBACK_BATCH_SIZE) {
        const ids = list
          .slice(start, start + WRITEBACK_BATCH_SIZE)
          .map((p) => soqlString(p.item.externalId))
        const soql = `SELECT Id, ${fields.join(', ')} FROM ${type} WHERE Id IN (${ids.join(', ')})`
        const page = await runQuery(session, soql, {
          all: false,
          batchSize: 2000,
          what: `the current ${type} values`,
        })
        for (const record of page.records) current.set(String(record.Id), record)
      }
    }
  } catch (err) {
    throw toVendorError(err, 'reading current values for a writeback preview', session)
  }
  return planned.map((p): WritebackPreview => {
    if (!p.record) {
      return {
        externalId: p.item.externalId,
        objectType: null,
        found: false,
        changes: [],
        error: p.error ?? 'not writable',
      }
    }
    const now = current.get(p.item.externalId)
    return {
      externalId: p.item.externalId,
      objectType: p.record.attributes.type,
      found: now !== undefined,
      changes: Object.entries(p.values).map(([field, to]) => ({
        field,
        from: now?.[field] ?? null,
        to,
      })),
    }
  })
}

type SalesforceRecord = { attributes: { type: string }; id: string } & Record<string, unknown>

/** The Salesforce record for an item (its fields already Salesforce's), or why it cannot be written. */
function toSalesforce(item: WritebackItem): {
  record?: SalesforceRecord
  values: Record<string, unknown>
  error?: string
} {
  const type = objectTypeOf(item)
  if (!type) return { values: {}, error: unsupported(item) }
  const values: Record<string, unknown> = {}
  for (const [field, value] of Object.entries(item.fields)) {
    // Field names end up in SOQL (preview) and JSON keys: API names only.
    const problem = /^[A-Za-z][A-Za-z0-9_]*$/.test(field)
      ? salesforceWriteback.checkTargetField(field)
      : `"${field}" is not a Salesforce field name.`
    if (problem) return { values: {}, error: problem }
    values[field] = value instanceof Date ? value.toISOString() : value
  }
  if (Object.keys(values).length === 0) return { values, error: 'no fields to write' }
  return { record: { attributes: { type }, id: item.externalId, ...values }, values }
}

function unsupported(item: WritebackItem): string {
  return item.entityType === 'person'
    ? `Salesforce person ${item.externalId} is neither a Contact (003…) nor a Lead (00Q…).`
    : `Salesforce writeback does not support ${item.entityType} records.`
}

/** Accounts are Accounts; a person is a Contact or a Lead, told apart by the id's key prefix. */
function objectTypeOf(item: WritebackItem): string | undefined {
  if (item.entityType === 'account') return 'Account'
  if (item.entityType === 'person') {
    if (item.externalId.startsWith('003')) return 'Contact'
    if (item.externalId.startsWith('00Q')) return 'Lead'
  }
  return undefined
}

function toResult(
  externalId: string,
  answer: z.infer<typeof saveResultSchema> | undefined,
): WritebackResult {
  if (!answer)
    return {
      externalId,
      ok: false,
      error: 'Salesforce returned no result for this record.',
      retryable: true,
    }
  if (answer.success) return { externalId, ok: true }
  const first = answer.errors[0]
  const detail =
    answer.errors.map((e) => `${e.statusCode}: ${e.message}`).join('; ') || 'unknown error'
  return {
    externalId,
    ok: false,
    error: detail,
    retryable: first !== undefined && TRANSIENT.has(first.statusCode),
  }
}

function dataUrl(session: SalesforceSession): string {
  const { instanceUrl, apiVersion } = session.credentials
  return `${instanceUrl.replace(/\/$/, '')}/services/data/v${apiVersion}`
}
