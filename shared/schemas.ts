import { z } from 'zod'

/** The three canonical shapes every source record is mapped into. */
export const entityTypeSchema = z.enum(['person', 'account', 'activity'])
export type EntityType = z.infer<typeof entityTypeSchema>
export const entityTypes = entityTypeSchema.options

const optionalText = z.string().optional()

/** What a canonical email must look like (Zod's own rule for `email()`), for checks without a parse. */
export const EMAIL_PATTERN: RegExp = z.regexes.email

/** A person: a contact or a lead. */
export const canonicalPersonSchema = z.object({
  externalId: z.string().min(1),
  email: z.string().email({ pattern: EMAIL_PATTERN }).optional(),
  firstName: optionalText,
  lastName: optionalText,
  title: optionalText,
  phone: optionalText,
  accountExternalId: optionalText,
})
export type CanonicalPerson = z.infer<typeof canonicalPersonSchema>

/** A company. */
export const canonicalAccountSchema = z.object({
  externalId: z.string().min(1),
  name: z.string().min(1),
  domain: optionalText,
  industry: optionalText,
  employeeCount: z.number().int().nonnegative().optional(),
  annualRevenue: z.number().finite().optional(),
})
export type CanonicalAccount = z.infer<typeof canonicalAccountSchema>

/** Something that happened: an email open, an intent signal, a meeting, an opportunity. */
export const canonicalActivitySchema = z.object({
  externalId: z.string().min(1),
  type: z.string().min(1),
  channel: optionalText,
  occurredAt: z.date(),
  personExternalId: optionalText,
  accountExternalId: optionalText,
  properties: z.record(z.string(), z.unknown()).optional(),
})
export type CanonicalActivity = z.infer<typeof canonicalActivitySchema>

export const canonicalSchemas = {
  person: canonicalPersonSchema,
  account: canonicalAccountSchema,
  activity: canonicalActivitySchema,
} as const

export type CanonicalRecord<E extends EntityType = EntityType> = {
  person: CanonicalPerson
  account: CanonicalAccount
  activity: CanonicalActivity
}[E]

/** Canonical fields that must be present, per entity type. */
export const requiredCanonicalFields: Record<EntityType, readonly string[]> = {
  person: ['externalId'],
  account: ['externalId', 'name'],
  activity: ['externalId', 'type', 'occurredAt'],
}

/** One raw record as a connector fetched it, before mapping. */
export const sourceRecordSchema = z.object({
  entityType: entityTypeSchema,
  /**
   * The vendor's payload; mapping reads it by dotted path. Checked to be an object, not copied
   * key by key: every record of a sync passes through here.
   */
  data: z.custom<Record<string, unknown>>(
    (value) => typeof value === 'object' && value !== null && !Array.isArray(value),
    'must be an object',
  ),
  /** The source says this record was deleted; only its external id is needed. */
  deleted: z.boolean().optional(),
  /** When the source last changed it; used to keep the newest of duplicates in one batch. */
  modifiedAt: z.union([z.date(), z.string(), z.number()]).optional(),
})
export type SourceRecord = z.infer<typeof sourceRecordSchema>

const entityTypeSet: ReadonlySet<unknown> = new Set(entityTypes)

/**
 * Whether a value is plainly a source record: a quick check, for every record of a sync, that
 * accepts only what sourceRecordSchema accepts. What it does not accept may still be one: ask
 * the schema then, which also says what is wrong.
 */
export function isPlainSourceRecord(value: unknown): value is SourceRecord {
  if (typeof value !== 'object' || value === null) return false
  const { entityType, data, deleted, modifiedAt } = value as Record<string, unknown>
  return (
    entityTypeSet.has(entityType) &&
    typeof data === 'object' &&
    data !== null &&
    !Array.isArray(data) &&
    (deleted === undefined || typeof deleted === 'boolean') &&
    (modifiedAt === undefined ||
      typeof modifiedAt === 'string' ||
      (typeof modifiedAt === 'number' && Number.isFinite(modifiedAt)) ||
      (modifiedAt instanceof Date && !Number.isNaN(modifiedAt.getTime())))
  )
}

export const syncStatsSchema = z.object({
  created: z.number().int().nonnegative(),
  updated: z.number().int().nonnegative(),
  errors: z.number().int().nonnegative(),
})
export type SyncStats = z.infer<typeof syncStatsSchema>

/** One page of a sync: the records fetched and where the next page starts. */
export const syncResultSchema = z.object({
  records: z.array(sourceRecordSchema),
  cursor: z.string().nullable(),
  hasMore: z.boolean(),
  syncedAt: z.date(),
  stats: syncStatsSchema,
  /**
   * How many records the stream holds in all, when the source says (a count before the first
   * page, a Bulk job's record count): the progress bar's end. Absent when unknown; a run keeps
   * the last one told.
   */
  expected: z.number().int().nonnegative().optional(),
})
export type SyncResult = z.infer<typeof syncResultSchema> & {
  /**
   * Records still in the page's body, after those in `records`, read out a slice at a time by
   * the pipeline as it maps them (a Bulk result page's CSV rows). Each record then lives only
   * while its slice is prepared, not while the whole page is.
   */
  unread?: UnreadRecords
}

/** The records a page has not read out of its body yet (SyncResult.unread). */
export interface UnreadRecords {
  /** How many records the body holds, as the source announced them. */
  readonly count: number
  /**
   * The next records, at most `max`; none once every record was read. Throws when the body
   * holds more or fewer records than `count`, or cannot be read: nothing of the page is written.
   */
  read(max: number): SourceRecord[]
}

export const transformSchema = z.enum(['none', 'lowercase', 'uppercase', 'trim'])
export type Transform = z.infer<typeof transformSchema>

/** One source field → one canonical field. */
export const fieldMappingSchema = z.object({
  sourceField: z.string().min(1),
  targetField: z.string().min(1),
  transform: transformSchema,
  required: z.boolean().optional(),
})
export type FieldMapping = z.infer<typeof fieldMappingSchema>

/** A field name as it appears in a field map: a letter, then letters, digits or "_". */
const fieldNameSchema = z
  .string()
  .trim()
  .regex(/^[A-Za-z][A-Za-z0-9_]*$/, 'must be a field name: a letter, then letters, digits or "_"')

/** One field a writeback sets: our field (a score) → the source's field. */
export const writebackFieldMappingSchema = z.object({
  canonicalField: fieldNameSchema,
  targetField: fieldNameSchema,
})
export type WritebackFieldMapping = z.infer<typeof writebackFieldMappingSchema>

/** A list of field mappings that writes each of our fields once and each source field once. */
export const writebackFieldMapSchema = z
  .array(writebackFieldMappingSchema)
  .superRefine((list, ctx) => {
    for (const key of ['canonicalField', 'targetField'] as const) {
      const seen = new Set<string>()
      list.forEach((m, index) => {
        if (seen.has(m[key])) {
          ctx.addIssue({
            code: 'custom',
            path: [index, key],
            message: `"${m[key]}" appears more than once`,
          })
        }
        seen.add(m[key])
      })
    }
  })

/** Whether one entity type is written back to a source, and which fields. */
export const writebackEntityConfigSchema = z.object({
  entityType: entityTypeSchema,
  fieldMap: writebackFieldMapSchema,
  enabled: z.boolean(),
})
export type WritebackEntityConfig = z.infer<typeof writebackEntityConfigSchema>

export const healthStateSchema = z.enum(['healthy', 'degraded', 'down'])
export type HealthState = z.infer<typeof healthStateSchema>

export const connectorHealthStatusSchema = z.object({
  status: healthStateSchema,
  latencyMs: z.number().nonnegative(),
  checkedAt: z.date(),
  message: z.string(),
  details: z.record(z.string(), z.unknown()),
})
export type ConnectorHealthStatus = z.infer<typeof connectorHealthStatusSchema>

export const connectorStatusSchema = z.enum([
  'disconnected',
  'pending_auth',
  'connected',
  'syncing',
  'error',
])
export type ConnectorStatus = z.infer<typeof connectorStatusSchema>

export const authMethodSchema = z.enum(['oauth2', 'api_key', 'msal', 'none'])
export type AuthMethod = z.infer<typeof authMethodSchema>

/** What the registry tells about a connector, for the CLI and the app. */
export const connectorInfoSchema = z.object({
  id: z.string(),
  name: z.string(),
  version: z.string(),
  authMethod: authMethodSchema,
  dataTypes: z.array(entityTypeSchema),
  /** What a sync reads, each as a run of its own. */
  streams: z.array(
    z.object({
      id: z.string(),
      name: z.string(),
      entityType: entityTypeSchema,
      partitioned: z.boolean(),
    }),
  ),
})
export type ConnectorInfo = z.infer<typeof connectorInfoSchema>

export const syncModeSchema = z.enum(['full', 'incremental'])
export type SyncMode = z.infer<typeof syncModeSchema>

export const syncRunStatusSchema = z.enum(['running', 'succeeded', 'failed', 'paused'])
export type SyncRunStatus = z.infer<typeof syncRunStatusSchema>
