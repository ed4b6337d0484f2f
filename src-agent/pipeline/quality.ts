import { isCalendarDay } from '../../shared/dates.js'
import {
  canonicalActivitySchema,
  EMAIL_PATTERN,
  canonicalSchemas,
  requiredCanonicalFields,
  type CanonicalRecord,
  type EntityType,
  type FieldMapping,
} from '../../shared/schemas.js'
import { isPlainObject, PROPERTIES_PREFIX } from './mapping.js'
import { storableText, storableValue } from './storable.js'

/** Why one record was refused: the canonical field at fault and a sentence naming it. */
export interface RecordIssue {
  field: string
  reason: string
}

/** A mapped record after quality checks: either a valid canonical record or the first issue. */
export type QualityResult<E extends EntityType = EntityType> =
  | { ok: true; record: CanonicalRecord<E> }
  | { ok: false; issue: RecordIssue; externalId: string | null }

/**
 * Coerces a mapped record, checks required fields (canonical ones and `required` mappings), and
 * validates it against the canonical schema.
 */
export function checkRecord<E extends EntityType>(
  entityType: E,
  mapped: Record<string, unknown>,
  mappings: readonly FieldMapping[],
): QualityResult<E> {
  const coerced = coerceRecord(mapped)
  const externalId =
    typeof coerced.record.externalId === 'string' ? coerced.record.externalId : null
  const first = coerced.issues[0] ?? findMissing(entityType, coerced.record, mappings)
  if (first) return { ok: false, issue: first, externalId }

  const valid = passCanonical(entityType, coerced.record)
  if (valid) return { ok: true, record: valid as CanonicalRecord<E> }
  const result = canonicalSchemas[entityType].safeParse(coerced.record)
  if (!result.success) {
    const issue = result.error.issues[0]
    const field = issue?.path.map(String).join('.') || 'record'
    return {
      ok: false,
      issue: { field, reason: `invalid field "${field}": ${issue?.message ?? 'invalid value'}` },
      externalId,
    }
  }
  return { ok: true, record: result.data as CanonicalRecord<E> }
}

/** A field rule: the value the canonical schema's parse would give, or INVALID. */
type FieldRule = (value: unknown) => unknown
const INVALID = Symbol('invalid')

const text: FieldRule = (v) => (typeof v === 'string' ? v : INVALID)
const nonEmptyText: FieldRule = (v) => (typeof v === 'string' && v.length > 0 ? v : INVALID)
// Coercion already checked the address with the schema's own email rule (normalizeEmail).
const coercedEmail = text
const count: FieldRule = (v) =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : INVALID
const finiteNumber: FieldRule = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : INVALID)
const validDate: FieldRule = (v) => (v instanceof Date && !Number.isNaN(v.getTime()) ? v : INVALID)
const propertiesRule: FieldRule = (v) => {
  const parsed = canonicalActivitySchema.shape.properties.safeParse(v)
  return parsed.success ? parsed.data : INVALID
}

/**
 * The canonical schemas' rules, field by field in schema order, as plain checks. Which fields
 * may be absent is read from the schemas themselves, and a rule list that does not name exactly
 * the schema's fields fails at load, so the two cannot drift apart unnoticed.
 */
const canonicalRules = {
  person: {
    externalId: nonEmptyText,
    email: coercedEmail,
    firstName: text,
    lastName: text,
    title: text,
    phone: text,
    accountExternalId: text,
  },
  account: {
    externalId: nonEmptyText,
    name: nonEmptyText,
    domain: text,
    industry: text,
    employeeCount: count,
    annualRevenue: finiteNumber,
  },
  activity: {
    externalId: nonEmptyText,
    type: nonEmptyText,
    channel: text,
    occurredAt: validDate,
    personExternalId: text,
    accountExternalId: text,
    properties: propertiesRule,
  },
} satisfies { [E in EntityType]: Record<keyof CanonicalRecord<E>, FieldRule> }

const compiledRules = Object.fromEntries(
  (Object.keys(canonicalRules) as EntityType[]).map((entityType) => {
    const shape: Record<string, { safeParse(value: unknown): { success: boolean } }> =
      canonicalSchemas[entityType].shape
    const rules: Record<string, FieldRule> = canonicalRules[entityType]
    if (Object.keys(rules).join() !== Object.keys(shape).join()) {
      throw new Error(`quality: the ${entityType} rules do not match the canonical schema`)
    }
    return [
      entityType,
      Object.entries(rules).map(([field, rule]) => ({
        field,
        rule,
        optional: shape[field]!.safeParse(undefined).success,
      })),
    ]
  }),
) as Record<EntityType, Array<{ field: string; rule: FieldRule; optional: boolean }>>

/**
 * The record as the canonical schema would parse it (its fields in schema order, other keys
 * dropped) when it passes every rule, which nearly every record does; undefined otherwise, and
 * the schema itself then says what is wrong.
 */
function passCanonical(
  entityType: EntityType,
  record: Record<string, unknown>,
): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {}
  for (const { field, rule, optional } of compiledRules[entityType]) {
    const value = record[field]
    if (value === undefined) {
      // As the schema does: an optional field given as undefined stays, one left out stays out.
      if (!optional) return undefined
      if (field in record) out[field] = undefined
      continue
    }
    const parsed = rule(value)
    if (parsed === INVALID) return undefined
    out[field] = parsed
  }
  return out
}

/**
 * Normalises field values: text loses what Postgres cannot store (NUL, lone surrogates: see
 * storableText), empty strings and null become absent, ids and text become strings, counts and
 * money become numbers, occurredAt a Date, email lower-case, domain a bare host. A value that
 * cannot be coerced, or that its column cannot hold, is left out and reported as an issue.
 */
export function coerceRecord(mapped: Record<string, unknown>): {
  record: Record<string, unknown>
  issues: RecordIssue[]
} {
  const record: Record<string, unknown> = {}
  const issues: RecordIssue[] = []
  for (const field in mapped) {
    if (!Object.hasOwn(mapped, field)) continue
    const result = coerceField(field, mapped[field])
    if (result instanceof Failure) issues.push(result.issue)
    else if (result !== undefined) record[field] = result
  }
  return { record, issues }
}

/** A number from a number or numeric text ("1,200", " 42 "); undefined when it is not one. */
export function toNumber(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? value : undefined
  if (typeof value !== 'string') return undefined
  const text = value.trim()
  // Thousands separators only in proper groups, so "1,2,3" is not silently read as 123.
  const plain = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/
  const grouped = /^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$/
  if (!plain.test(text) && !grouped.test(text)) return undefined
  return Number(text.replaceAll(',', ''))
}

/**
 * A Date from a Date, ISO (or other Date.parse-able) text, or an epoch number / numeric text:
 * below 1e11 it is seconds, otherwise milliseconds. Undefined when it is not a valid date.
 */
export function toDate(value: unknown): Date | undefined {
  let date: Date | undefined
  if (value instanceof Date) date = new Date(value.getTime())
  else if (typeof value === 'number') date = fromEpoch(value)
  else if (typeof value === 'string') {
    const text = value.trim()
    if (EPOCH_TEXT.test(text)) date = fromEpoch(Number(text))
    else if (isCalendarDay(text)) date = new Date(Date.parse(text))
  }
  return date && !Number.isNaN(date.getTime()) ? date : undefined
}

/** Epoch milliseconds of a `modifiedAt` value, or undefined when absent or unreadable. */
export function toTimestamp(value: unknown): number | undefined {
  if (typeof value === 'string') {
    const text = value.trim()
    if (!EPOCH_TEXT.test(text)) {
      // What toDate does with such text, without the Date: Date.parse is already a time value.
      const ms = isCalendarDay(text) ? Date.parse(text) : Number.NaN
      return Number.isNaN(ms) ? undefined : ms
    }
  }
  return toDate(value)?.getTime()
}

/**
 * One item per key, keeping the newest: the greatest `modifiedAt`; on a tie, or when either
 * side has none, the one later in the batch. Winners keep their batch order.
 */
export function dedupeNewest<T>(
  items: readonly T[],
  keyOf: (item: T) => string,
  modifiedAtOf: (item: T) => unknown,
): T[] {
  const n = items.length
  // Timestamps are only needed where a key repeats, so they are read on demand.
  const times = new Array<number | undefined>(n)
  const read = new Uint8Array(n)
  const timeAt = (index: number): number | undefined => {
    if (read[index] === 0) {
      times[index] = toTimestamp(modifiedAtOf(items[index]!))
      read[index] = 1
    }
    return times[index]
  }
  const winners = new Map<string, number>()
  for (let index = 0; index < n; index++) {
    const key = keyOf(items[index]!)
    const current = winners.get(key)
    if (current !== undefined) {
      // Pairwise in batch order: an older-stamped later item loses only when both are stamped.
      const currentTime = timeAt(current)
      const time = timeAt(index)
      if (currentTime !== undefined && time !== undefined && time < currentTime) continue
    }
    winners.set(key, index)
  }
  if (winners.size === n) return items.slice()
  const keep = new Set(winners.values())
  return items.filter((_, index) => keep.has(index))
}

/**
 * Trimmed, lower-cased email; undefined when it is not a valid address (one longer than 254
 * characters never is, and would not fit the email's index: Postgres would fail the page).
 */
export function normalizeEmail(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined
  const email = value.trim().toLowerCase()
  if (email.length > MAX_EMAIL_LENGTH) return undefined
  // The schema's own pattern, tested in place: a parse per record allocates its result.
  return EMAIL_PATTERN.test(email) ? email : undefined
}

/**
 * The bare host of a URL, host or email: `https://www.Acme.com/pricing`, `WWW.acme.com`,
 * `acme.com/` and `bob@acme.com` all give `acme.com`. Undefined when no domain can be read.
 */
export function normalizeDomain(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined
  let host = value.trim().toLowerCase()
  host = host.replace(/^mailto:/, '').replace(/^[a-z][a-z0-9+.-]*:\/\//, '')
  host = host.split(/[/?#]/, 1)[0] ?? ''
  // Whatever precedes the last "@" is a mailbox or URL credentials, never the domain.
  host = host.slice(host.lastIndexOf('@') + 1)
  host = host
    .replace(/:\d*$/, '')
    .replace(/\.+$/, '')
    .replace(/^www\./, '')
  // No domain is longer than 253 characters (RFC 1035); a longer "host" would also not fit the
  // domain's index, and Postgres would fail the whole page (54000), not just this record.
  if (host.length > MAX_DOMAIN_LENGTH) return undefined
  const label = '[\\p{L}\\p{N}](?:[\\p{L}\\p{N}-]*[\\p{L}\\p{N}])?'
  return new RegExp(`^(?:${label}\\.)+${label}$`, 'u').test(host) ? host : undefined
}

/** The longest domain name (RFC 1035) and email address (RFC 5321 path limit, less "<>"). */
const MAX_DOMAIN_LENGTH = 253
const MAX_EMAIL_LENGTH = 254

/** Numeric text that toDate reads as an epoch rather than as a date. */
const EPOCH_TEXT = /^[+-]?\d+(\.\d+)?$/

/** Canonical fields that hold another record's id or this record's id. */
const idFields = new Set(['externalId', 'accountExternalId', 'personExternalId'])
const numberFields = new Set(['employeeCount', 'annualRevenue'])
/** Fields stored in an `integer` column (accounts.employee_count): larger values cannot be written. */
const integerFields = new Set(['employeeCount'])
const INTEGER_MAX = 2_147_483_647

function fromEpoch(epoch: number): Date {
  return new Date(Math.abs(epoch) < 1e11 ? epoch * 1000 : epoch)
}

/** A field that could not be coerced (a class, so a coerced value can never be mistaken for one). */
class Failure {
  readonly issue: RecordIssue
  constructor(issue: RecordIssue) {
    this.issue = issue
  }
}

/** The coerced value, undefined when the field is absent, or a Failure. */
function coerceField(field: string, given: unknown): unknown {
  if (given === null || given === undefined) return undefined
  const value = typeof given === 'string' ? storableText(given) : given
  if (typeof value === 'string' && value.trim() === '') return undefined
  if (field === 'properties') return storableValue(value)
  if (numberFields.has(field)) {
    const number = toNumber(value)
    if (number === undefined) return failed(field, value, 'is not a number')
    // Negative and fractional counts are the canonical schema's to refuse.
    if (integerFields.has(field) && Math.abs(number) > INTEGER_MAX) {
      return failed(field, value, `is out of range (at most ${INTEGER_MAX})`)
    }
    return number
  }
  if (field === 'occurredAt') {
    const date = toDate(value)
    if (date === undefined) return failed(field, value, 'is not a valid date')
    // Postgres reads only four-digit years from toISOString (it writes others as "+020000-…").
    const year = date.getUTCFullYear()
    return year < 1 || year > 9999 ? failed(field, value, 'is outside the years 1 to 9999') : date
  }
  if (field === 'email') {
    const email = normalizeEmail(value)
    // The address itself is left out of the reason: reasons are logged, emails are personal data.
    return email === undefined
      ? new Failure({ field, reason: `field "email" is not a valid email address` })
      : email
  }
  if (field === 'domain') {
    const domain = normalizeDomain(value)
    return domain === undefined
      ? failed(field, value, 'is not a domain, URL or email address')
      : domain
  }
  // Vendors send numeric ids and phone numbers as JSON numbers; canonical text fields want strings.
  const text = typeof value === 'number' && Number.isFinite(value) ? String(value) : value
  if (typeof text === 'bigint') return text.toString()
  if (idFields.has(field) && typeof text === 'string') return text.trim()
  return text
}

function findMissing(
  entityType: EntityType,
  record: Record<string, unknown>,
  mappings: readonly FieldMapping[],
): RecordIssue | undefined {
  for (const field of requiredCanonicalFields[entityType]) {
    if (record[field] === undefined) {
      const source = mappings.find((m) => m.targetField === field)?.sourceField
      return missing(field, source)
    }
  }
  for (const mapping of mappings) {
    if (mapping.required && readTarget(record, mapping.targetField) === undefined) {
      return missing(mapping.targetField, mapping.sourceField)
    }
  }
  return undefined
}

function readTarget(record: Record<string, unknown>, targetField: string): unknown {
  if (!targetField.startsWith(PROPERTIES_PREFIX)) return record[targetField]
  const properties = record.properties
  if (!isPlainObject(properties)) return undefined
  const value = properties[targetField.slice(PROPERTIES_PREFIX.length)]
  return typeof value === 'string' && value.trim() === '' ? undefined : (value ?? undefined)
}

function missing(field: string, sourceField: string | undefined): RecordIssue {
  const from = sourceField === undefined ? '' : ` (source field "${sourceField}" is empty)`
  return { field, reason: `missing required field "${field}"${from}` }
}

function failed(field: string, value: unknown, what: string): Failure {
  return new Failure({ field, reason: `field "${field}" ${what}: ${preview(value)}` })
}

/** A short printable form of a bad value, so a reason stays one readable line. */
function preview(value: unknown): string {
  let text: string
  if (value instanceof Date) text = 'Invalid Date'
  else if (typeof value === 'bigint') text = `${value.toString()}n`
  else text = JSON.stringify(value) ?? String(value)
  return text.length > 60 ? `${text.slice(0, 57)}...` : text
}
