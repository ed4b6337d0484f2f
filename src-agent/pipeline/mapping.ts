import type { z } from 'zod'
import { ConfigError } from '../../shared/errors.js'
import {
  canonicalSchemas,
  fieldMappingSchema,
  requiredCanonicalFields,
  transformSchema,
  type EntityType,
  type FieldMapping,
  type Transform,
} from '../../shared/schemas.js'

/** Prefix of activity targets that write one key of the `properties` object. */
export const PROPERTIES_PREFIX = 'properties.'

export interface ValidateMappingsOptions {
  /** A partial list (tenant overrides): required canonical fields need not be mapped. */
  partial?: boolean
}

/** The canonical field names a mapping may target for this entity type. */
export function canonicalFieldNames(entityType: EntityType): string[] {
  return Object.keys(canonicalSchemas[entityType].shape)
}

/** Whether `targetField` is a valid mapping target for this entity type. */
export function isValidTargetField(entityType: EntityType, targetField: string): boolean {
  if (entityType === 'activity' && targetField.startsWith(PROPERTIES_PREFIX)) {
    return targetField.length > PROPERTIES_PREFIX.length
  }
  return Object.hasOwn(canonicalSchemas[entityType].shape, targetField)
}

/**
 * Parses and checks a mapping list; throws ConfigError 'mapping_invalid' naming the first bad
 * field. Without `partial`, every required canonical field must be mapped.
 */
export function validateMappings(
  entityType: EntityType,
  mappings: unknown,
  options: ValidateMappingsOptions = {},
): FieldMapping[] {
  if (!Array.isArray(mappings)) {
    throw invalid(entityType, 'expected a list of field mappings')
  }
  const parsed: FieldMapping[] = []
  const seen = new Set<string>()
  for (const [index, item] of mappings.entries()) {
    const mapping = parseOne(entityType, item, index)
    if (!isValidTargetField(entityType, mapping.targetField)) {
      throw invalid(
        entityType,
        `target field "${mapping.targetField}" is not a canonical ${entityType} field ` +
          `(expected one of: ${expectedTargets(entityType)})`,
      )
    }
    if (seen.has(mapping.targetField)) {
      throw invalid(entityType, `target field "${mapping.targetField}" is mapped more than once`)
    }
    seen.add(mapping.targetField)
    parsed.push(mapping)
  }
  if (!options.partial) {
    for (const field of requiredCanonicalFields[entityType]) {
      if (!seen.has(field)) {
        throw invalid(entityType, `required field "${field}" is not mapped to any source field`)
      }
    }
  }
  return parsed
}

/**
 * The connector's defaults overlaid by the tenant's overrides: an override replaces the default
 * with the same targetField (in the default's position); overrides for new targets are appended.
 * No overrides means the defaults ("reset to defaults").
 */
export function mergeMappings(
  defaults: readonly FieldMapping[],
  overrides: readonly FieldMapping[],
): FieldMapping[] {
  // Later overrides for the same target win, so a list edited by appending behaves as expected.
  const byTarget = new Map<string, FieldMapping>()
  for (const override of overrides) byTarget.set(override.targetField, override)
  const used = new Set<string>()
  const merged = defaults.map((mapping) => {
    const override = byTarget.get(mapping.targetField)
    if (!override) return mapping
    used.add(mapping.targetField)
    return override
  })
  for (const [target, override] of byTarget) {
    if (!used.has(target)) merged.push(override)
  }
  return merged
}

/** Validates the overrides, overlays them on the defaults, and validates the result. */
export function resolveMappings(
  entityType: EntityType,
  defaults: readonly FieldMapping[],
  overrides: unknown,
): FieldMapping[] {
  const checkedOverrides = validateMappings(entityType, overrides ?? [], { partial: true })
  return validateMappings(entityType, mergeMappings(defaults, checkedOverrides))
}

/** Reads `a.b.c` from nested objects; a missing, null or non-object step yields undefined. */
export function getPath(obj: unknown, dottedPath: string): unknown {
  if (!dottedPath.includes('.')) {
    // One segment (most mappings): the loop below without splitting the path.
    if (obj === null || typeof obj !== 'object' || !Object.hasOwn(obj, dottedPath)) return undefined
    return (obj as Record<string, unknown>)[dottedPath] ?? undefined
  }
  let current: unknown = obj
  for (const segment of dottedPath.split('.')) {
    if (current === null || typeof current !== 'object') return undefined
    // Own properties only: a path like "constructor" must not read the prototype.
    if (!Object.hasOwn(current, segment)) return undefined
    current = (current as Record<string, unknown>)[segment]
  }
  return current ?? undefined
}

/** Applies a transform to a string; any other value passes through unchanged. */
export function applyTransform(value: unknown, transform: Transform): unknown {
  if (typeof value !== 'string') return value
  switch (transform) {
    case 'none':
      return value
    case 'lowercase':
      return value.toLowerCase()
    case 'uppercase':
      return value.toUpperCase()
    case 'trim':
      return value.trim()
  }
}

/**
 * Maps one raw vendor payload to a (not yet coerced or validated) canonical record. Fields whose
 * source value is missing or null are absent; `properties.<key>` targets fill `properties`.
 */
export function mapRecord(
  entityType: EntityType,
  raw: Record<string, unknown>,
  mappings: readonly FieldMapping[],
): Record<string, unknown> {
  const record: Record<string, unknown> = {}
  const properties: Record<string, unknown> = {}
  let hasProperties = false
  for (const mapping of mappings) {
    const value = applyTransform(getPath(raw, mapping.sourceField), mapping.transform)
    if (value === undefined) continue
    if (entityType === 'activity' && mapping.targetField.startsWith(PROPERTIES_PREFIX)) {
      properties[mapping.targetField.slice(PROPERTIES_PREFIX.length)] = value
      hasProperties = true
    } else {
      record[mapping.targetField] = value
    }
  }
  if (hasProperties) {
    // A whole-object `properties` mapping is the base; single-key targets override its keys.
    const base = record.properties
    record.properties = isPlainObject(base) ? { ...base, ...properties } : properties
  }
  return record
}

/** True for `{}`-style objects (not arrays, dates or class instances). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false
  const proto: unknown = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

function parseOne(entityType: EntityType, item: unknown, index: number): FieldMapping {
  const label = describeItem(item, index)
  const result = fieldMappingSchema.safeParse(item)
  if (!result.success) {
    throw invalid(entityType, `${label} ${describeIssue(item, result.error)}`)
  }
  const mapping = result.data
  const segments = mapping.sourceField.split('.')
  if (segments.some((segment) => segment.trim() === '')) {
    const reason =
      mapping.sourceField.trim() === ''
        ? 'has an empty sourceField'
        : `has sourceField "${mapping.sourceField}" with an empty path segment`
    throw invalid(entityType, `${label} ${reason}`)
  }
  return mapping
}

function describeItem(item: unknown, index: number): string {
  const target = isPlainObject(item) ? item.targetField : undefined
  return typeof target === 'string' && target !== ''
    ? `target field "${target}"`
    : `mapping #${index + 1}`
}

function describeIssue(item: unknown, error: z.ZodError): string {
  if (!isPlainObject(item)) {
    return 'is not an object with sourceField, targetField and transform'
  }
  const issue = error.issues[0]
  const key = String(issue?.path[0] ?? '')
  const value = item[key]
  switch (key) {
    case 'transform':
      return value === undefined
        ? `has no transform (expected one of: ${transformSchema.options.join(', ')})`
        : `has transform ${JSON.stringify(value)}, which is not one of: ` +
            transformSchema.options.join(', ')
    case 'sourceField':
      return value === undefined || value === ''
        ? 'has an empty sourceField'
        : `has sourceField ${JSON.stringify(value)}, which is not text`
    case 'targetField':
      return value === undefined || value === ''
        ? 'has an empty targetField'
        : `has targetField ${JSON.stringify(value)}, which is not text`
    case 'required':
      return `has required ${JSON.stringify(value)}, which is not true or false`
    default:
      return issue?.message ?? 'is invalid'
  }
}

function expectedTargets(entityType: EntityType): string {
  const names = canonicalFieldNames(entityType).join(', ')
  return entityType === 'activity' ? `${names}, or ${PROPERTIES_PREFIX}<key>` : names
}

function invalid(entityType: EntityType, detail: string): ConfigError {
  return new ConfigError('mapping_invalid', `Mapping for ${entityType}: ${detail}`)
}
