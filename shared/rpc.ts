import { z } from 'zod'
import type { CallError, CallResult, Contract } from './contract.js'
import {
  connectorInfoSchema,
  writebackEntityConfigSchema,
  writebackFieldMapSchema,
  connectorStatusSchema,
  entityTypeSchema,
  fieldMappingSchema,
  healthStateSchema,
  syncModeSchema,
} from './schemas.js'

/**
 * The agent's RPC contract: every method main may call on the agent process, with its input and
 * output schema, and the events the agent pushes back. The agent parses every request with these
 * schemas (shared/contract.ts dispatch) and main parses every answer and event again, so neither
 * side trusts the other's types. Method names are `domain:verb`, like the renderer's channels;
 * shared/ipc.ts forwards most of them to the renderer unchanged.
 */

const id = z.string().min(1).max(200)
const tenantId = z.string().min(1).max(64)
const connectorType = z.string().min(1).max(64)
const isoTime = z.string().datetime({ offset: true })
const connectionTarget = z.object({ tenantId, connectorType })

export const agentInfoSchema = z.object({
  version: z.string(),
  pid: z.number().int(),
  startedAt: isoTime,
  uptimeSeconds: z.number().nonnegative(),
  memory: z.object({ rssBytes: z.number(), heapUsedBytes: z.number() }),
  database: z.object({
    kind: z.enum(['embedded', 'external']),
    /** Applied by the database, and shipped by this agent: current when they are equal. */
    migrations: z.object({ applied: z.number().int(), shipped: z.number().int() }),
  }),
  /**
   * The agent's own Temporal worker: 'off' when the app runs none (GTM_AGENT_WORKER=off, an
   * on-prem worker runs the syncs), 'stopped' when it failed (workerError says why).
   */
  worker: z.enum(['starting', 'running', 'stopped', 'off']),
  workerError: z.string().nullable(),
  /** The fingerprint of the connector encryption key in use, never the key. */
  encryptionKeyId: z.string(),
})

export const connectorSummarySchema = connectorInfoSchema.extend({
  /** The config form: a JSON Schema of the connector's config, secret keys listed apart. */
  configSchema: z.record(z.string(), z.unknown()),
  secretConfigKeys: z.array(z.string()),
  /** Connects through the system browser (OAuth, admin consent) instead of a form. */
  signIn: z.boolean(),
  /** The sign-in form (client id, login URL …): a JSON Schema, null without a browser sign-in. */
  signInSchema: z.record(z.string(), z.unknown()).nullable(),
  webhooks: z.boolean(),
  /** Can write scores back to the source (writeback settings and dry run). */
  writeback: z.boolean(),
})

export const streamStateSchema = z.object({
  stream: z.string(),
  partition: z.string(),
  status: z.string(),
  lastSyncAt: isoTime.nullable(),
  lastError: z.string().nullable(),
})

export const connectionSummarySchema = z.object({
  connectorType: z.string(),
  connectionId: z.string(),
  status: connectorStatusSchema,
  /** The config without its secrets: what Reconnect starts from. */
  config: z.record(z.string(), z.unknown()),
  lastSyncAt: isoTime.nullable(),
  lastSyncError: z.string().nullable(),
  createdAt: isoTime,
  streams: z.array(streamStateSchema),
  /** Records stored from this connection, by entity type. */
  records: z.object({ person: z.number(), account: z.number(), activity: z.number() }),
  /**
   * Live records per stream, in the order the streams are read. Records stored before streams
   * were recorded, of an entity type several streams produce, count under stream ''.
   */
  recordsByStream: z.array(z.object({ stream: z.string(), records: z.number() })),
  /** The source refused the stored credentials: Reconnect (sign in again, or a new key). */
  needsReauth: z.boolean(),
})

export const syncRunSchema = z.object({
  runId: z.string(),
  connectorType: z.string(),
  stream: z.string().nullable(),
  partition: z.string().nullable(),
  mode: syncModeSchema,
  status: z.string(),
  startedAt: isoTime,
  finishedAt: isoTime.nullable(),
  pages: z.number(),
  created: z.number(),
  updated: z.number(),
  deleted: z.number(),
  errors: z.number(),
  error: z.string().nullable(),
})

export const syncCountsSchema = z.object({
  pages: z.number(),
  created: z.number(),
  updated: z.number(),
  deleted: z.number(),
  errors: z.number(),
})

export const syncSummarySchema = syncCountsSchema.extend({
  status: z.string(),
  mode: syncModeSchema,
  error: z.string().nullable(),
  streams: z.array(
    syncCountsSchema.extend({ stream: z.string(), status: z.string(), runId: z.string() }),
  ),
})

export const mappingViewSchema = z.object({
  entityType: entityTypeSchema,
  stream: z.string(),
  defaults: z.array(fieldMappingSchema),
  overrides: z.array(fieldMappingSchema),
  effective: z.array(fieldMappingSchema),
})

export const quarantineItemSchema = z.object({
  id: z.string(),
  connectorType: z.string(),
  runId: z.string().nullable(),
  entityType: entityTypeSchema,
  externalId: z.string().nullable(),
  reason: z.string(),
  rawPayload: z.record(z.string(), z.unknown()),
  createdAt: isoTime,
})

export const auditEntrySchema = z.object({
  id: z.string(),
  userId: z.string(),
  action: z.string(),
  resource: z.string(),
  resourceId: z.string().nullable(),
  changes: z.object({ before: z.unknown().optional(), after: z.unknown().optional() }),
  createdAt: isoTime,
})

export const healthViewSchema = z.object({
  status: healthStateSchema,
  latencyMs: z.number(),
  checkedAt: isoTime,
  message: z.string(),
})

export const tenantViewSchema = z.object({ id: z.string(), name: z.string() })

export const scheduleViewSchema = z.object({
  scheduleId: z.string(),
  /** As set (null for a schedule made outside the agent). */
  cron: z.string().nullable(),
  paused: z.boolean(),
  note: z.string().nullable(),
  nextRunAt: isoTime.nullable(),
  lastRunAt: isoTime.nullable(),
  running: z.boolean(),
})

export const sourceFieldSchema = z.object({
  path: z.string(),
  label: z.string(),
  type: z.string(),
  custom: z.boolean().optional(),
})

export const writebackSettingsSchema = writebackEntityConfigSchema.extend({
  connectorType: z.string(),
  /** True while the tenant has not changed the connector's defaults. */
  isDefault: z.boolean(),
})

/** One named setup check of a connection's settings, run before anything is saved. */
export const setupCheckSchema = z.object({
  /** Stable key: settings, auth, reachable, permissions, webhook_key, agreement. */
  id: z.string(),
  /** What an admin reads: "Key accepted". */
  label: z.string(),
  status: z.enum(['passed', 'failed', 'skipped']),
  /** What happened, in a sentence. */
  message: z.string(),
  /** What to do when it failed; null when it passed. */
  hint: z.string().nullable(),
  latencyMs: z.number().nonnegative().nullable(),
})

export const setupReportSchema = z.object({
  /** True when every check passed (skipped ones do not count against it). */
  ok: z.boolean(),
  checks: z.array(setupCheckSchema),
})

/** One sample record through the draft mappings and the quality rules. */
export const previewRowSchema = z.object({
  externalId: z.string().nullable(),
  /** The source record's data as read (secret-looking keys removed). */
  raw: z.record(z.string(), z.unknown()),
  /** The canonical record it becomes; null when it is rejected or a deletion. */
  canonical: z.record(z.string(), z.unknown()).nullable(),
  deleted: z.boolean(),
  /** Why it would be quarantined: the canonical field at fault and the reason. */
  rejects: z.array(z.object({ field: z.string(), reason: z.string() })),
})

export const mappingPreviewSchema = z.object({
  /** When the samples were read from the source (they are reused for a few minutes). */
  fetchedAt: isoTime,
  /** Why the draft cannot be saved (names the field), or null; rows are empty then. */
  mappingError: z.string().nullable(),
  rows: z.array(previewRowSchema),
  accepted: z.number().int(),
  rejected: z.number().int(),
  /** Time spent mapping and checking, sample reading excluded. */
  durationMs: z.number().nonnegative(),
})

export const timelineTypeSchema = z.enum([
  'run',
  'config',
  'mapping',
  'signin',
  'schedule',
  'writeback',
])

export const timelineEntrySchema = z.object({
  id: z.string(),
  type: timelineTypeSchema,
  at: isoTime,
  /** One line: "Sync succeeded", "Mapping of Contacts changed". */
  title: z.string(),
  /** Who did it (audit user), or null for a scheduled run. */
  userId: z.string().nullable(),
  /** A run's figures; null for other entries. */
  run: z
    .object({
      runId: z.string(),
      status: z.string(),
      mode: syncModeSchema,
      stream: z.string().nullable(),
      records: z.number().int(),
      durationMs: z.number().nullable(),
      error: z.string().nullable(),
    })
    .nullable(),
})

export const writebackPreviewSchema = z.object({
  /** Items queued for the connection, all of which a real writeback would send. */
  queued: z.number().int(),
  items: z.array(
    z.object({
      entityType: entityTypeSchema,
      externalId: z.string(),
      objectType: z.string().nullable(),
      found: z.boolean(),
      changes: z.array(z.object({ field: z.string(), from: z.unknown(), to: z.unknown() })),
      error: z.string().nullable(),
    }),
  ),
})

const errorKindSchema = z.enum(['configuration', 'transient', 'system'])

export const diagnosticsSchema = z.object({
  checkedAt: isoTime,
  database: z.object({
    reachable: z.boolean(),
    latencyMs: z.number().nullable(),
    migrations: z.object({ applied: z.number().int(), shipped: z.number().int() }).nullable(),
    /** Tenant tables without forced row-level security; empty when all are protected. */
    tablesWithoutRls: z.array(z.string()),
    error: z.string().nullable(),
  }),
  temporal: z.object({
    reachable: z.boolean(),
    address: z.string(),
    namespace: z.string(),
    latencyMs: z.number().nullable(),
    worker: z.enum(['starting', 'running', 'stopped', 'off']),
    workerError: z.string().nullable(),
    /** The tenant's connection schedules Temporal holds; null when it could not be asked. */
    schedules: z.number().int().nullable(),
    error: z.string().nullable(),
  }),
  encryptionKey: z.object({ present: z.boolean(), keyId: z.string().nullable() }),
  connections: z.array(
    z.object({
      connectorType: z.string(),
      status: connectorStatusSchema,
      health: healthViewSchema.nullable(),
      /** API calls used of the vendor's allowance (Salesforce's daily API requests). */
      quota: z.object({ used: z.number(), limit: z.number() }).nullable(),
      /** When the access token in use expires, for sources that say (Microsoft 365). */
      tokenExpiresAt: isoTime.nullable(),
      /** The kind of credential and how it is kept valid. */
      credential: z.string(),
      error: z.string().nullable(),
    }),
  ),
  /** Failures of the last 7 days grouped by kind and code, newest first. */
  recentErrors: z.array(
    z.object({
      kind: errorKindSchema,
      code: z.string(),
      connectorType: z.string().nullable(),
      count: z.number().int(),
      lastAt: isoTime,
      message: z.string(),
      /** What to do about it. */
      nextStep: z.string(),
    }),
  ),
})

/** The sign-in settings a connector's browser flow needs (client id, login URL …), no tokens. */
const signInInput = connectionTarget.extend({
  config: z.record(z.string(), z.unknown()),
  /** The loopback port registered with the vendor (Settings → Sign-in redirect port). */
  redirectPort: z.number().int().min(0).max(65_535),
  timeoutMs: z
    .number()
    .int()
    .min(1_000)
    .max(30 * 60_000)
    .optional(),
})

export const agentRpc = {
  'agent:info': { kind: 'query', input: z.void(), output: agentInfoSchema },
  'tenants:list': { kind: 'query', input: z.void(), output: z.array(tenantViewSchema) },
  'tenants:create': {
    kind: 'mutation',
    input: z.object({ id: tenantId, name: z.string().min(1).max(200) }),
    output: tenantViewSchema,
  },
  'connectors:list': { kind: 'query', input: z.void(), output: z.array(connectorSummarySchema) },
  'connections:list': {
    kind: 'query',
    input: z.object({ tenantId }),
    output: z.array(connectionSummarySchema),
  },
  'connections:connect': {
    kind: 'mutation',
    input: connectionTarget.extend({ config: z.record(z.string(), z.unknown()) }),
    output: z.object({
      connectionId: z.string(),
      status: connectorStatusSchema,
      created: z.boolean(),
      health: healthViewSchema,
    }),
  },
  'connections:disconnect': {
    kind: 'mutation',
    input: connectionTarget,
    output: z.object({ disconnected: z.boolean() }),
  },
  'connections:health': { kind: 'query', input: connectionTarget, output: healthViewSchema },
  'sync:run': {
    kind: 'mutation',
    input: connectionTarget.extend({
      stream: id.optional(),
      partition: id.optional(),
      full: z.boolean().optional(),
      pageSize: z.number().int().min(1).max(10_000).optional(),
    }),
    output: syncSummarySchema,
  },
  'runs:list': {
    kind: 'query',
    input: connectionTarget.extend({ limit: z.number().int().min(1).max(500).default(50) }),
    output: z.array(syncRunSchema),
  },
  'mappings:get': {
    kind: 'query',
    input: connectionTarget.extend({ entityType: entityTypeSchema, stream: id.optional() }),
    output: mappingViewSchema,
  },
  'mappings:set': {
    kind: 'mutation',
    input: connectionTarget.extend({
      entityType: entityTypeSchema,
      stream: id.optional(),
      mappings: z.array(fieldMappingSchema).min(1),
    }),
    output: mappingViewSchema,
  },
  'mappings:reset': {
    kind: 'mutation',
    input: connectionTarget.extend({ entityType: entityTypeSchema, stream: id.optional() }),
    output: mappingViewSchema,
  },
  'quarantine:list': {
    kind: 'query',
    input: connectionTarget.extend({
      externalId: z.string().max(200).optional(),
      limit: z.number().int().min(1).max(500).default(100),
    }),
    output: z.array(quarantineItemSchema),
  },
  'audit:list': {
    kind: 'query',
    input: z.object({
      tenantId,
      action: z.string().max(100).optional(),
      resource: z.string().max(100).optional(),
      userId: z.string().max(200).optional(),
      from: isoTime.optional(),
      to: isoTime.optional(),
      limit: z.number().int().min(1).max(500).default(100),
    }),
    output: z.array(auditEntrySchema),
  },
  'sources:fields': {
    kind: 'query',
    input: connectionTarget.extend({ stream: id }),
    output: z.array(sourceFieldSchema),
  },
  /** The connection's sync schedule in Temporal; null when it has none. */
  'schedules:get': {
    kind: 'query',
    input: connectionTarget,
    output: scheduleViewSchema.nullable(),
  },
  'schedules:set': {
    kind: 'mutation',
    input: connectionTarget.extend({ cron: z.string().min(1).max(200) }),
    output: scheduleViewSchema,
  },
  'schedules:pause': { kind: 'mutation', input: connectionTarget, output: scheduleViewSchema },
  'schedules:resume': { kind: 'mutation', input: connectionTarget, output: scheduleViewSchema },
  'writeback:list': {
    kind: 'query',
    input: connectionTarget,
    output: z.array(writebackSettingsSchema),
  },
  'writeback:set': {
    kind: 'mutation',
    input: connectionTarget.extend({
      entityType: entityTypeSchema,
      enabled: z.boolean().optional(),
      fieldMap: writebackFieldMapSchema.optional(),
    }),
    output: writebackSettingsSchema,
  },
  /** Accepts a connector's terms for the tenant (Microsoft 365's data-processing terms). */
  'agreements:accept': {
    kind: 'mutation',
    input: connectionTarget,
    output: z.object({ acceptedAt: isoTime, already: z.boolean() }),
  },
  /** Runs the named setup checks of a config without storing anything; `connect:check` events report each. */
  'connections:check': {
    kind: 'query',
    input: connectionTarget.extend({ config: z.record(z.string(), z.unknown()) }),
    output: setupReportSchema,
  },
  /** Runs draft mappings and the quality rules over sample records read from the source. */
  'mappings:preview': {
    kind: 'query',
    input: connectionTarget.extend({
      entityType: entityTypeSchema,
      stream: id.optional(),
      mappings: z.array(fieldMappingSchema).max(500),
      limit: z.number().int().min(1).max(1000).default(50),
      /** Read fresh samples instead of the ones kept from the last preview. */
      refresh: z.boolean().optional(),
    }),
    output: mappingPreviewSchema,
  },
  /** Maps rejected records again with the current mappings; the ones that pass are stored. */
  'quarantine:retry': {
    kind: 'mutation',
    input: connectionTarget.extend({ ids: z.array(z.string().uuid()).min(1).max(500).optional() }),
    output: z.object({
      retried: z.number().int(),
      accepted: z.number().int(),
      stillRejected: z.number().int(),
    }),
  },
  'timeline:list': {
    kind: 'query',
    input: connectionTarget.extend({
      types: z.array(timelineTypeSchema).optional(),
      from: isoTime.optional(),
      to: isoTime.optional(),
      limit: z.number().int().min(1).max(500).default(100),
    }),
    output: z.array(timelineEntrySchema),
  },
  /** A dry run of the queued writeback: the source's values now against the new ones. */
  'writeback:preview': {
    kind: 'query',
    input: connectionTarget.extend({ limit: z.number().int().min(1).max(200).default(50) }),
    output: writebackPreviewSchema,
  },
  /** The local health check: database, Temporal, the key, every connection, recent errors. */
  'diagnostics:run': { kind: 'query', input: z.object({ tenantId }), output: diagnosticsSchema },
  'signin:run': {
    kind: 'mutation',
    input: signInInput,
    output: z.object({ connectionId: z.string(), status: connectorStatusSchema }),
  },
} as const satisfies Contract

export type AgentRpc = typeof agentRpc
export type AgentMethod = keyof AgentRpc

// --- events the agent pushes (main forwards them to the renderer) ---

export const syncProgressEventSchema = syncCountsSchema.extend({
  tenantId: z.string(),
  connectorType: z.string(),
  /** The stream being read; the counts beside it are this stream's so far. */
  stream: z.string().nullable(),
  phase: z.string(),
  /** The whole sync's counts so far, every stream read up to now included. */
  totals: syncCountsSchema,
  /** Milliseconds since the sync started, so the screen can show records per second. */
  elapsedMs: z.number(),
  /** How many records this stream holds in all, when the source says (a bar and an ETA). */
  expected: z.number().int().nonnegative().nullable().optional(),
})

export const connectCheckEventSchema = z.object({
  tenantId: z.string(),
  connectorType: z.string(),
  /** Its place among the checks, from 0, and how many there are. */
  index: z.number().int().nonnegative(),
  total: z.number().int().positive(),
  check: setupCheckSchema,
})

export const signInStateEventSchema = z.discriminatedUnion('phase', [
  /** The listener is up; main opens `url` in the system browser. */
  z.object({
    phase: z.literal('waiting'),
    connectorType: z.string(),
    url: z.string().url(),
    redirectUri: z.string(),
    expiresAt: isoTime,
  }),
  z.object({ phase: z.literal('exchanging'), connectorType: z.string() }),
  z.object({ phase: z.literal('succeeded'), connectorType: z.string() }),
  z.object({ phase: z.literal('failed'), connectorType: z.string(), message: z.string() }),
  z.object({ phase: z.literal('cancelled'), connectorType: z.string() }),
])

export const agentEvents = {
  'sync:progress': syncProgressEventSchema,
  'signin:state': signInStateEventSchema,
  'connect:check': connectCheckEventSchema,
} as const

export type AgentEventName = keyof typeof agentEvents
export type AgentEvent<E extends AgentEventName> = z.output<(typeof agentEvents)[E]>

// --- the wire: what travels over the MessagePort (or the Node IPC channel in tests) ---

/** main → agent */
export const toAgentMessageSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('request'),
    id: z.number().int().nonnegative(),
    method: z.string(),
    input: z.unknown(),
  }),
  /** The caller gave up (timeout, Cancel): the handler's signal fires. */
  z.object({ type: z.literal('cancel'), id: z.number().int().nonnegative() }),
  /** Quit: finish the page in hand, stop, close the database, exit 0. */
  z.object({ type: z.literal('shutdown') }),
])
export type ToAgentMessage = z.output<typeof toAgentMessageSchema>

/** agent → main */
export type FromAgentMessage =
  | { type: 'ready'; version: string; pid: number }
  | { type: 'response'; id: number; result: CallResult<unknown> }
  | { type: 'event'; event: AgentEventName; requestId: number | null; data: unknown }
  /** A fatal start-up problem (no database, bad key): main shows it instead of restarting blindly. */
  | { type: 'fatal'; error: CallError }

export const fromAgentMessageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('ready'), version: z.string(), pid: z.number() }),
  z.object({
    type: z.literal('response'),
    id: z.number().int().nonnegative(),
    result: z.union([
      z.object({ ok: z.literal(true), data: z.unknown() }),
      z.object({
        ok: z.literal(false),
        error: z.object({ code: z.string(), message: z.string(), retryable: z.boolean() }),
      }),
    ]),
  }),
  z.object({
    type: z.literal('event'),
    event: z.enum(['sync:progress', 'signin:state', 'connect:check']),
    requestId: z.number().int().nullable(),
    data: z.unknown(),
  }),
  z.object({
    type: z.literal('fatal'),
    error: z.object({ code: z.string(), message: z.string(), retryable: z.boolean() }),
  }),
])

/** Environment variables main hands the agent process at start. */
export const AGENT_ENV = {
  /** Who the audit log names for the app's changes: `app:<os user>`. */
  user: 'GTM_USER',
  /** 'off' runs no Temporal worker in the agent (tests, or an app that only configures). */
  worker: 'GTM_AGENT_WORKER',
} as const
