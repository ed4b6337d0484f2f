import type {
  CanonicalRecord,
  EntityType,
  FieldMapping,
  SourceRecord,
} from '../../shared/schemas.js'
import { applyTransform, getPath, isPlainObject, mapRecord, validateMappings } from './mapping.js'
import { checkRecord, coerceRecord, dedupeNewest } from './quality.js'
import { isStorableText, storableValue } from './storable.js'

/** One record ready to write: the canonical row and the vendor payload kept as `source_data`. */
export interface PreparedUpsert<E extends EntityType = EntityType> {
  record: CanonicalRecord<E>
  raw: Record<string, unknown>
}

/** One refused record, with the canonical field at fault and why. */
export interface PreparedReject {
  externalId: string | null
  field: string
  reason: string
  raw: Record<string, unknown>
}

/** The outcome of the transform stage for one batch of one entity type. */
export interface PreparedBatch<E extends EntityType = EntityType> {
  upserts: Array<PreparedUpsert<E>>
  /** External ids of records the source reports as deleted. */
  deletions: string[]
  rejects: PreparedReject[]
}

export interface PrepareBatchInput<E extends EntityType> {
  entityType: E
  records: readonly SourceRecord[]
  mappings: readonly FieldMapping[]
}

/**
 * Maps, coerces, validates and dedupes one batch. A bad record becomes a reject and never stops
 * the batch; invalid mappings throw ConfigError 'mapping_invalid' before any record is read.
 */
export function prepareBatch<E extends EntityType>(input: PrepareBatchInput<E>): PreparedBatch<E> {
  const preparer = batchPreparer(input.entityType, input.mappings)
  preparer.add(input.records)
  return preparer.finish()
}

/**
 * prepareBatch a slice at a time, so that a caller can let other work run between slices:
 * `add` each slice of the batch's records, in order, then `finish` dedupes the whole batch.
 */
export function batchPreparer<E extends EntityType>(
  entityType: E,
  givenMappings: readonly FieldMapping[],
): { add: (records: readonly SourceRecord[]) => void; finish: () => PreparedBatch<E> } {
  const prepare = slicePreparer(entityType, givenMappings)
  const rejects: PreparedReject[] = []
  const outcomes: Array<Outcome<E>> = []
  return {
    add: (records) => {
      const slice = prepare(records)
      for (const outcome of slice.outcomes) outcomes.push(outcome)
      for (const reject of slice.rejects) rejects.push(reject)
    },
    finish: () => {
      // Deletions and upserts of one id compete: whichever the source changed last is the truth.
      const winners = dedupeNewest(
        outcomes,
        (outcome) => outcome.externalId,
        (outcome) => outcome.modifiedAt,
      )
      const batch: PreparedBatch<E> = { upserts: [], deletions: [], rejects }
      for (const winner of winners) {
        if (winner.upsert) batch.upserts.push(winner.upsert)
        else batch.deletions.push(winner.externalId)
      }
      return batch
    },
  }
}

/**
 * Maps, coerces and validates records a slice at a time, handing each slice's outcomes back
 * instead of keeping them (the caller dedupes, see dedupeNewest): a sync encodes each slice at
 * once and keeps only what dedupe needs. Invalid mappings throw as in prepareBatch.
 */
export function slicePreparer<E extends EntityType>(
  entityType: E,
  givenMappings: readonly FieldMapping[],
): (records: readonly SourceRecord[]) => {
  outcomes: Array<Outcome<E>>
  rejects: PreparedReject[]
} {
  const mappings = validateMappings(entityType, givenMappings)
  return (records) => {
    const outcomes: Array<Outcome<E>> = []
    const rejects: PreparedReject[] = []
    for (const source of records) {
      const outcome = prepareRecord(entityType, source, mappings)
      if ('reject' in outcome) rejects.push(outcome.reject)
      else outcomes.push(outcome)
    }
    return { outcomes, rejects }
  }
}

/** What the transform stage makes of one record: an upsert, a deletion (no upsert) or a reject. */
export type RecordOutcome<E extends EntityType = EntityType> =
  | {
      externalId: string
      modifiedAt: SourceRecord['modifiedAt']
      /** Absent for a deletion. */
      upsert?: PreparedUpsert<E>
    }
  | { reject: PreparedReject }

/**
 * Maps, coerces and validates one record with mappings that `validateMappings` already
 * checked: the per-record step of prepareBatch (which then dedupes), for callers that need each
 * record's own outcome in order (the mapping preview).
 */
export function prepareRecord<E extends EntityType>(
  entityType: E,
  source: SourceRecord,
  mappings: readonly FieldMapping[],
): RecordOutcome<E> {
  const raw = isPlainObject(source.data) ? storedPayload(source.data) : {}
  if (source.entityType !== entityType) {
    return {
      reject: {
        externalId: null,
        field: 'entityType',
        reason: `record is a ${String(source.entityType)}, but this batch holds ${entityType} records`,
        raw,
      },
    }
  }
  if (!isPlainObject(source.data)) {
    return { reject: { externalId: null, field: 'data', reason: 'record has no data object', raw } }
  }
  return source.deleted
    ? prepareDeletion<E>(source, mappings, raw)
    : prepareUpsert(entityType, source, mappings, raw)
}

/**
 * Groups records by entity type and prepares each group with `mappingsFor(entityType)`; entity
 * types without records get an empty batch and their mappings are not asked for.
 */
export function prepareRecords(
  records: readonly SourceRecord[],
  mappingsFor: (entityType: EntityType) => readonly FieldMapping[],
): PreparedRecords {
  const groups = groupByEntityType(records)
  const prepare = <E extends EntityType>(entityType: E): PreparedBatch<E> => {
    const group = groups.get(entityType)
    if (!group) return { upserts: [], deletions: [], rejects: [] }
    return prepareBatch({ entityType, records: group, mappings: mappingsFor(entityType) })
  }
  return { person: prepare('person'), account: prepare('account'), activity: prepare('activity') }
}

/** Prepared batches of every entity type. */
export type PreparedRecords = { [E in EntityType]: PreparedBatch<E> }

/** Records grouped by entity type, each group in the records' order. */
export function groupByEntityType(
  records: readonly SourceRecord[],
): Map<EntityType, SourceRecord[]> {
  const groups = new Map<EntityType, SourceRecord[]>()
  for (const record of records) {
    // Connector output is parsed with sourceRecordSchema upstream, so every type is a known one.
    const group = groups.get(record.entityType) ?? []
    group.push(record)
    groups.set(record.entityType, group)
  }
  return groups
}

/** Keys that hold credentials; removed from the stored payload at any depth. */
export const SECRET_KEY_PATTERN = /token|secret|password|api[-_]?key|authorization/i

/** A deep copy of a vendor payload without secret-looking keys (see SECRET_KEY_PATTERN). */
export function stripSecrets(data: Record<string, unknown>): Record<string, unknown> {
  return stripObject(data, new WeakSet())
}

/**
 * The payload as it will be stored: `stripSecrets(data)` with its text (keys too) made storable
 * (storableValue), except that a payload with nothing to strip or clean (no secret-looking key,
 * no cycle, no NUL or lone surrogate, at any depth) is returned as it is instead of copied. Both
 * serialise to the same JSON; the pipeline only reads and serialises `raw`.
 */
function storedPayload(data: Record<string, unknown>): Record<string, unknown> {
  ancestors.length = 0
  const clean = isClean(data, ancestors)
  ancestors.length = 0
  return clean ? data : (storableValue(stripSecrets(data)) as Record<string, unknown>)
}

/** isClean's path, reused from record to record (the check is synchronous). */
const ancestors: object[] = []

/**
 * Whether a value holds no secret-looking or unstorable key, no unstorable text and no cycle;
 * `path` holds its ancestors. One walk over every value, so text costs a native scan each.
 */
function isClean(value: Record<string, unknown> | unknown[], path: object[]): boolean {
  if (path.includes(value)) return false
  path.push(value)
  if (Array.isArray(value)) {
    for (const item of value) {
      if (!isCleanItem(item, path)) return false
    }
  } else {
    for (const key in value) {
      if (!Object.hasOwn(value, key)) continue
      if (!isKeptKey(key)) return false
      if (!isCleanItem(value[key], path)) return false
    }
  }
  path.pop()
  return true
}

function isCleanItem(item: unknown, path: object[]): boolean {
  if (typeof item === 'string') return isStorableText(item)
  return !(Array.isArray(item) || isPlainObject(item)) || isClean(item, path)
}

/**
 * Payload keys repeat from record to record, so each key's verdict (kept as it is: neither
 * secret-looking nor unstorable) is remembered (bounded).
 */
const keyVerdicts = new Map<string, boolean>()

function isKeptKey(key: string): boolean {
  let verdict = keyVerdicts.get(key)
  if (verdict === undefined) {
    verdict = !SECRET_KEY_PATTERN.test(key) && isStorableText(key)
    if (keyVerdicts.size < 10_000) keyVerdicts.set(key, verdict)
  }
  return verdict
}

/** An upsert's or a deletion's outcome: a record that was not refused. */
export type Outcome<E extends EntityType> = Exclude<RecordOutcome<E>, { reject: PreparedReject }>

function prepareUpsert<E extends EntityType>(
  entityType: E,
  source: SourceRecord,
  mappings: readonly FieldMapping[],
  raw: Record<string, unknown>,
): Outcome<E> | { reject: PreparedReject } {
  const result = checkRecord(entityType, mapRecord(entityType, source.data, mappings), mappings)
  if (!result.ok) return { reject: { externalId: result.externalId, ...result.issue, raw } }
  return {
    externalId: result.record.externalId,
    modifiedAt: source.modifiedAt,
    upsert: { record: result.record, raw },
  }
}

function prepareDeletion<E extends EntityType>(
  source: SourceRecord,
  mappings: readonly FieldMapping[],
  raw: Record<string, unknown>,
): Outcome<E> | { reject: PreparedReject } {
  // validateMappings guarantees an externalId mapping; only that one field is needed.
  const mapping = mappings.find((m) => m.targetField === 'externalId')
  const value =
    mapping && applyTransform(getPath(source.data, mapping.sourceField), mapping.transform)
  const externalId = coerceRecord({ externalId: value }).record.externalId
  if (typeof externalId !== 'string') {
    const from = mapping ? ` (source field "${mapping.sourceField}")` : ''
    return {
      reject: {
        externalId: null,
        field: 'externalId',
        reason: `deleted record has no external id${from}`,
        raw,
      },
    }
  }
  return { externalId, modifiedAt: source.modifiedAt }
}

function stripValue(value: unknown, seen: WeakSet<object>): unknown {
  // A cycle cannot be stored as JSON; the repeated reference is dropped instead of recursing.
  if ((Array.isArray(value) || isPlainObject(value)) && seen.has(value)) return undefined
  if (Array.isArray(value)) {
    seen.add(value)
    const copy = value.map((item) => stripValue(item, seen))
    seen.delete(value)
    return copy
  }
  return isPlainObject(value) ? stripObject(value, seen) : value
}

function stripObject(
  data: Record<string, unknown>,
  seen: WeakSet<object>,
): Record<string, unknown> {
  seen.add(data)
  const copy: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(data)) {
    if (SECRET_KEY_PATTERN.test(key)) continue
    const stripped = stripValue(value, seen)
    if (stripped !== undefined) copy[key] = stripped
  }
  seen.delete(data)
  return copy
}
