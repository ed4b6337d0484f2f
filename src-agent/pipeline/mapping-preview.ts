/**
 * The mapping editor's live preview, the pure part: sample records through draft mappings and the
 * quality rules, record by record, with the sync's own code (prepareRecord, validateMappings), so
 * a preview and a sync can never disagree about a record. Nothing here reads or writes anything.
 */
import { ConfigError } from '../../shared/errors.js'
import type { EntityType, FieldMapping, SourceRecord } from '../../shared/schemas.js'
import { validateMappings } from './mapping.js'
import { prepareRecord, stripSecrets } from './prepare.js'

/** One sample as the preview shows it (shared/rpc.ts previewRowSchema). */
export interface PreviewRow {
  externalId: string | null
  raw: Record<string, unknown>
  canonical: Record<string, unknown> | null
  deleted: boolean
  rejects: Array<{ field: string; reason: string }>
}

export interface MappingPreview {
  /** Why the draft cannot be used (names the field), or null; `rows` are empty then. */
  mappingError: string | null
  rows: PreviewRow[]
  accepted: number
  rejected: number
}

/**
 * Runs `mappings` over the first `limit` samples of `entityType`, in the samples' order. An
 * invalid draft is an answer (mappingError), not a failure. Unlike a sync page, duplicates of
 * one id are all shown: the editor previews records, not what one page would keep of them.
 */
export function previewMappings(input: {
  entityType: EntityType
  records: readonly SourceRecord[]
  mappings: unknown
  limit: number
}): MappingPreview {
  const { entityType } = input
  let mappings: FieldMapping[]
  try {
    mappings = validateMappings(entityType, input.mappings)
  } catch (err) {
    if (err instanceof ConfigError && err.code === 'mapping_invalid') {
      return { mappingError: err.userMessage, rows: [], accepted: 0, rejected: 0 }
    }
    throw err
  }
  const rows: PreviewRow[] = []
  let rejected = 0
  for (const source of input.records) {
    if (rows.length >= input.limit) break
    // A page of a connector without streams mixes entity types: the others are not samples.
    if (source.entityType !== entityType) continue
    const outcome = prepareRecord(entityType, source, mappings)
    const raw = stripSecrets(source.data)
    if ('reject' in outcome) {
      rejected++
      const { externalId, field, reason } = outcome.reject
      rows.push({ externalId, raw, canonical: null, deleted: false, rejects: [{ field, reason }] })
    } else {
      rows.push({
        externalId: outcome.externalId,
        raw,
        canonical: outcome.upsert ? plainJson(outcome.upsert.record) : null,
        deleted: outcome.upsert === undefined,
        rejects: [],
      })
    }
  }
  return { mappingError: null, rows, accepted: rows.length - rejected, rejected }
}

/** The record as JSON would carry it: dates as ISO text, undefined fields left out. */
function plainJson(record: object): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(record)) {
    if (value === undefined) continue
    out[key] = value instanceof Date ? value.toISOString() : value
  }
  return out
}
