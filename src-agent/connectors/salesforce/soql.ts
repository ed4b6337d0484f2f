/**
 * SOQL for incremental reads: every queryable field, keyset-paged on (SystemModstamp, Id).
 * https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/
 */
import type { Position, SyncObject } from './cursor.js'
import type { DescribeResult } from './schemas.js'

/**
 * Longest query URL we send. Salesforce answers 414 above about 16 KB of request line, so a
 * query over this is read through Bulk API 2.0 (POST body) instead.
 */
export const MAX_QUERY_URL = 15_000

/** Fields every read needs, whatever the describe says. */
export const KEY_FIELDS = ['Id', 'SystemModstamp', 'IsDeleted'] as const

/** Field types a query cannot select as plain columns (compound and binary fields). */
const UNSELECTABLE = new Set(['address', 'location', 'base64', 'complexvalue'])

/** The fields to read and their types, key fields first. */
export interface ObjectFields {
  object: SyncObject
  fields: string[]
  types: Map<string, string>
}

/** Every selectable field of a describe, key fields first, in describe order otherwise. */
export function selectableFields(object: SyncObject, describe: DescribeResult): ObjectFields {
  const types = new Map<string, string>()
  for (const field of describe.fields) {
    if (!UNSELECTABLE.has(field.type)) types.set(field.name, field.type)
  }
  const rest = [...types.keys()].filter((name) => !(KEY_FIELDS as readonly string[]).includes(name))
  return { object, fields: [...KEY_FIELDS, ...rest], types }
}

/** A datetime literal (unquoted, whole seconds, UTC) as SOQL wants it. */
export function soqlDateTime(iso: string): string {
  return `${new Date(iso).toISOString().slice(0, 19)}Z`
}

/** A quoted SOQL string literal. */
export function soqlString(value: string): string {
  return `'${value.replace(/[\\']/g, (c) => `\\${c}`)}'`
}

/** Records strictly after `position` in (SystemModstamp, Id) order; null from the beginning. */
export function keysetCondition(position: Position | null): string | null {
  if (!position) return null
  const stamp = soqlDateTime(position.stamp)
  if (position.id === null) return `SystemModstamp >= ${stamp}`
  return `(SystemModstamp > ${stamp} OR (SystemModstamp = ${stamp} AND Id > ${soqlString(position.id)}))`
}

/** One keyset page: the next `limit` records after `position`, deleted ones included (queryAll). */
export function keysetQuery(input: {
  object: SyncObject
  fields: readonly string[]
  position: Position | null
  limit: number
}): string {
  const where = keysetCondition(input.position)
  return (
    `SELECT ${input.fields.join(', ')} FROM ${input.object}` +
    (where ? ` WHERE ${where}` : '') +
    ` ORDER BY SystemModstamp ASC, Id ASC LIMIT ${input.limit}`
  )
}

/** Everything after `position` for a Bulk job (Bulk results are unordered, so no ORDER BY). */
export function bulkQuery(input: {
  object: SyncObject
  fields: readonly string[]
  position: Position | null
}): string {
  const where = keysetCondition(input.position)
  return `SELECT ${input.fields.join(', ')} FROM ${input.object}${where ? ` WHERE ${where}` : ''}`
}

/** The URL a REST query is sent to. */
export function queryUrl(
  instanceUrl: string,
  apiVersion: string,
  soql: string,
  all: boolean,
): string {
  const base = instanceUrl.replace(/\/$/, '')
  return `${base}/services/data/v${apiVersion}/${all ? 'queryAll' : 'query'}?q=${encodeURIComponent(soql)}`
}

/** Whether a query's URL stays within MAX_QUERY_URL. */
export function fitsInUrl(instanceUrl: string, apiVersion: string, soql: string): boolean {
  return queryUrl(instanceUrl, apiVersion, soql, true).length <= MAX_QUERY_URL
}
