import type { z } from 'zod'
import type { Tx } from '../../db/client.js'
import type {
  AuthMethod,
  ConnectorHealthStatus,
  EntityType,
  FieldMapping,
  SourceRecord,
  SyncResult,
  WritebackFieldMapping,
} from '../../shared/schemas.js'
import type { Logger } from '../logging/logger.js'
import type { CallLabels } from '../telemetry/metrics.js'
import type { RetryEvent } from './retry.js'

/** What a connector keeps to reach its source: tokens, API keys. Encrypted at rest, never logged. */
export type Credentials = Record<string, unknown>

export interface AuthResult {
  credentials: Credentials
  expiresAt?: Date
}

/** What every call that uses (and may refresh) a connection's credentials accepts. */
export interface CredentialOptions {
  /** Aborts the request in flight (a second Ctrl-C, a cancelled activity). */
  signal?: AbortSignal
  /**
   * Stops softly (a first Ctrl-C or SIGTERM): a request in flight runs to its end, but it is not
   * retried and no wait (backoff, job polling) continues, so the call ends within one deadline.
   */
  stop?: AbortSignal
  log?: Logger
  /** Called when the connector obtained new credentials (a refreshed token) that must be persisted. */
  onCredentialsChanged?: (credentials: Credentials) => Promise<void>
  /**
   * Runs `fn` while holding a per-connection Postgres advisory lock, passing the latest stored
   * credentials (re-read and decrypted under the lock). A connector refreshes tokens inside it,
   * so a second process waiting for the lock sees the refreshed token and does not refresh again.
   */
  credentialLock?: <T>(fn: (latest: Credentials) => Promise<T>) => Promise<T>
  /** Hears each retry of a vendor call: the attempt that failed, why, and the wait (retry.ts). */
  onRetry?: (event: RetryEvent) => void
  /**
   * Who the calls are made for (tenant and connector), for the vendor-call metrics: pass them
   * with every call (RetryOptions.labels, VendorRequest.labels).
   */
  labels?: CallLabels
}

export interface SyncOptions extends CredentialOptions {
  /**
   * The stream this page belongs to (a connector declaring `streams` always gets one), and its
   * partition for a partitioned stream. The cursor passed with it is that stream's own.
   */
  stream?: string
  partition?: string | null
  /**
   * This run reads everything: its first page gets a null cursor, later pages the cursor the
   * connector returned. A connector may pick a bulk strategy for it.
   */
  full?: boolean
  /** Records per page the connector should ask its source for. */
  pageSize?: number
  /**
   * Only this one page is wanted (the mapping editor's samples): read it the cheapest way, with
   * no bulk strategy and no extra calls, whatever the cursor would suggest.
   */
  sample?: boolean
}

/**
 * One field update to write back to the source. Queued with our field names (combinedScore);
 * a connector's `send` and `preview` get the source's names, after the tenant's field map.
 */
export interface WritebackItem {
  entityType: EntityType
  /** The record's id in the source. */
  externalId: string
  fields: Record<string, unknown>
}

/** One item as it would be written, next to the values the source holds now. */
export interface WritebackPreview {
  externalId: string
  /** The source's object type (Account, Contact…), or null when the item cannot be written. */
  objectType: string | null
  /** False when the source has no such record (or it was deleted). */
  found: boolean
  changes: Array<{ field: string; from: unknown; to: unknown }>
  error?: string
}

/** What the source said about one item: `retryable` failures are tried again later. */
export interface WritebackResult {
  externalId: string
  ok: boolean
  error?: string
  retryable?: boolean
}

export type WritebackOptions = CredentialOptions

/**
 * A connector that can write field updates back to its source. `send` answers per item and
 * throws VendorError only when the whole request failed (auth, throttling, outage).
 */
export interface WritebackCapability {
  send(
    credentials: Credentials,
    items: WritebackItem[],
    options?: WritebackOptions,
  ): Promise<WritebackResult[]>
  /** The most items one `send` may carry. */
  readonly maxBatchSize: number
  /**
   * The entity types it can write, each with the settings a tenant gets until it changes them
   * (`writeback config`): whether it is written back, and our field → the source's field.
   */
  readonly defaults: Partial<
    Record<EntityType, { enabled: boolean; fieldMap: WritebackFieldMapping[] }>
  >
  /** Why an item can never be written (its id names no writable record), checked when queued. */
  checkItem?(item: WritebackItem): string | undefined
  /** Why a field of the source cannot be a writeback target, checked when a field map is set. */
  checkTargetField?(field: string): string | undefined
  /** A dry run: what each item would change, read from the source; nothing is written. */
  preview?(
    credentials: Credentials,
    items: WritebackItem[],
    options?: WritebackOptions,
  ): Promise<WritebackPreview[]>
}

/** A sign-in in progress: what `begin` made, held in memory until its callback arrives. */
export interface PendingSignIn {
  /** Open this in the admin's browser. */
  readonly url: string
  /** The callback must carry exactly this value (CSRF protection, RFC 6749 §10.12). */
  readonly state: string
  /** Where the browser comes back to; a token exchange must name it again. */
  readonly redirectUri: string
  /** What completion needs and nobody else may see (a PKCE verifier). Never logged or shown. */
  readonly secrets: Readonly<Record<string, string>>
}

/** What `complete` accepts besides the callback: the deadlines and retries of its vendor calls. */
export type SignInOptions = Pick<CredentialOptions, 'signal' | 'stop' | 'log' | 'onRetry'>

/**
 * A connector an admin connects by signing in through a browser: `begin` builds the authorize
 * URL for a loopback redirect URI, the browser comes back to that URI with query parameters, and
 * `complete` turns them into the connector's config (tokens included) for the usual connect path
 * (authenticate, health check, encrypt, store). The loopback listener (signin/loopback.ts) checks
 * `state` before `complete` sees the parameters; `complete` checks it again.
 *
 * It fits both kinds of sign-in we need:
 * - OAuth code + PKCE (Salesforce): `secrets` holds the verifier; the callback carries `code`,
 *   which `complete` exchanges for tokens.
 * - Admin consent (Microsoft 365, `/{tenant}/v2.0/adminconsent`): `secrets` is empty; the
 *   callback carries `admin_consent=True&tenant=<id>`, and `complete` returns a config with that
 *   tenant id, whose app-only tokens `authenticate` then gets (client credentials).
 * Either way, a callback with `error` (and `error_description`) becomes a VendorError
 * `vendor_auth_failed` that says the sign-in was refused and why.
 */
export interface SignInCapability<Config = unknown, SignInConfig = unknown> {
  /** Parses what sign-in needs (client id, login URL…, never tokens); errors name the key. */
  readonly configSchema: z.ZodType<SignInConfig>
  /** A fresh sign-in: the URL to open, its `state` and what completion needs. */
  begin(config: SignInConfig, options: { redirectUri: string }): PendingSignIn
  /** Turns the callback's query parameters into the connector's config; refusals throw. */
  complete(
    config: SignInConfig,
    pending: PendingSignIn,
    callback: URLSearchParams,
    options?: SignInOptions,
  ): Promise<Config>
}

export type HealthOptions = CredentialOptions

/** One webhook request as it arrived: header names lower-cased, the body exactly as sent. */
export interface WebhookRequest {
  headers: Readonly<Record<string, string | undefined>>
  rawBody: Buffer
  receivedAt: Date
}

/**
 * Whether a webhook request comes from the source: 401 for a missing, stale or wrong signature,
 * 400 for a request too malformed to check. `reason` is logged and must not quote a secret.
 */
export type WebhookVerdict = { ok: true } | { ok: false; status: 400 | 401; reason: string }

/** One event read from a webhook body. */
export interface WebhookEvent {
  /** The source's id for the event: a redelivery carries the same one, and is stored once. */
  eventId: string
  /** The source's name for what happened (`email_opened`, `meeting.ended`). */
  type: string
  occurredAt?: Date
  /** The connector stream the event belongs to, when the connector has streams. */
  stream?: string
  /** The event as the source sent it, kept in the inbox. */
  payload: Record<string, unknown>
  /** The raw records it carries, shaped as `sync()` returns them; mapped when it is processed. */
  records: SourceRecord[]
}

/** A webhook body read into events, or why it could not be (a short sentence, answered with 400). */
export type WebhookParseResult =
  { ok: true; events: WebhookEvent[] } | { ok: false; reason: string }

/**
 * A connector that receives events pushed by its source. The agent checks the body size, finds
 * the connection, then calls `verify` with its stored credentials (the signing key is a secret
 * config key) before `parse`; events are stored before the source gets its 2xx.
 */
export interface WebhookCapability {
  /** The largest body accepted; a longer one is answered 413 without being read to its end. */
  readonly maxBodyBytes: number
  /** The config key (one of `secretConfigKeys`) holding the key `verify` checks signatures with. */
  readonly signingKeyConfigKey: string
  /** Checks the signature (in constant time) and the timestamp (against replays). */
  verify(request: WebhookRequest, credentials: Credentials): WebhookVerdict
  /** Reads a verified body into events. Pure: no I/O, never throws on bad input. */
  parse(rawBody: Buffer, headers: WebhookRequest['headers']): WebhookParseResult
}

/**
 * One feed of a source that is read on its own: its own cursor, stats and sync_runs row, so a
 * failing stream does not stop the others and one stream can be read again alone.
 */
export interface StreamDefinition {
  /** Stable key (a contract: cursors, mappings and runs are stored under it), e.g. `contacts`. */
  readonly id: string
  /** What an admin reads: "Contacts". */
  readonly name: string
  /** The canonical shape its records take. */
  readonly entityType: EntityType
  /** Its default field mappings; when absent, the connector's `getSchema(entityType)`. */
  readonly defaultMappings?: readonly FieldMapping[]
  /**
   * Read per partition (a mailbox, a team), each with its own cursor: the connector lists them
   * with `listPartitions`, and each is restartable alone.
   */
  readonly partitioned?: boolean
}

/** A field of a source record, as the mapping editor offers it. */
export interface SourceField {
  /** Dotted path into the record's data: what a mapping's `sourceField` names. */
  path: string
  label: string
  /** The source's type name (string, date, picklist…), for display. */
  type: string
  /** A field the admin added to the source (a Salesforce custom field). */
  custom?: boolean
}

/**
 * A data source. `sync` returns ONE page: the pipeline calls it again with the returned cursor
 * while `hasMore` is true, committing each page's rows and cursor in one transaction.
 * The cursor is opaque to everything but the connector that made it. A page may say how many
 * records its stream holds in all (`SyncResult.expected`) when the source tells; the sync's
 * progress events carry it.
 */
export interface Connector<Config = unknown> {
  readonly id: string
  readonly name: string
  /** SemVer of this connector's implementation. */
  readonly version: string
  readonly authMethod: AuthMethod
  /** Entity types this connector produces. */
  readonly dataTypes: readonly EntityType[]
  /** Parses the `connect` config file; errors name the failing key. */
  readonly configSchema: z.ZodType<Config>
  /** Config keys that are secrets: kept only inside the encrypted credentials, never in `config`. */
  readonly secretConfigKeys: readonly string[]
  /**
   * Where an admin gets new credentials, as a sentence naming the place in the source's admin
   * screens (the setup checks show it when the source refuses the key).
   */
  readonly credentialsHelp?: string
  authenticate(config: Config, options?: HealthOptions): Promise<AuthResult>
  sync(credentials: Credentials, cursor: string | null, options?: SyncOptions): Promise<SyncResult>
  /** The default field mappings for one entity type ([] when the connector does not produce it). */
  getSchema(entityType: EntityType): FieldMapping[]
  healthCheck(credentials: Credentials, options?: HealthOptions): Promise<ConnectorHealthStatus>
  /** Present when the connector can write updates back to its source. */
  readonly writeback?: WritebackCapability
  /**
   * The streams it reads. Without them the connector is one stream, `records` (streams.ts), and
   * its `sync` pages may mix entity types.
   */
  readonly streams?: readonly StreamDefinition[]
  /**
   * Two streams of one entity type would collide on (tenant_id, source, external_id) unless the
   * ids they produce are unique across the source (Salesforce ids are): the registry refuses such
   * streams unless this is set.
   */
  readonly idsUniqueAcrossStreams?: boolean
  /** The partitions of a partitioned stream, read at the start of each run of it. */
  listPartitions?(
    credentials: Credentials,
    stream: string,
    options?: HealthOptions,
  ): Promise<string[]>
  /** The fields a stream's records carry, custom fields included, for the mapping editor. */
  listSourceFields?(
    credentials: Credentials,
    stream: string,
    options?: HealthOptions,
  ): Promise<SourceField[]>
  /**
   * Splits the one cursor a connection stored before it had streams into a cursor per stream,
   * so no connected tenant reads everything again. Streams it leaves out start from scratch.
   */
  upgradeCursor?(legacy: string): Record<string, string | null>
  /** Present when an admin can connect it by signing in through a browser. */
  readonly signIn?: SignInCapability<Config>
  /** Present when the connector's source can push events (`gtm-agent webhooks serve`). */
  readonly webhooks?: WebhookCapability
  /** Present when the connector keeps rows of its own beside the canonical tables. */
  readonly sideTables?: SideTableCapability
  /**
   * Terms a tenant's admin must accept before any sync reads the source (Microsoft 365's
   * data-processing terms). A sync without them fails before its first vendor call.
   */
  readonly requiredAgreement?: {
    /** Stored under this key, e.g. `dpa`. */
    readonly id: string
    /** What they are, as an admin reads it. */
    readonly name: string
    /** The command that accepts them, with `<tenant>` for the tenant's id. */
    readonly acceptCommand: string
  }
}

/**
 * Rows a connector keeps beside the canonical tables (a meeting's transcript and summary), in
 * tenant tables of its own with row-level security. Written in the transaction of the page (or
 * webhook event) that carried them, so they commit with its records and cursor.
 */
export interface SideTableCapability {
  /**
   * Writes what `records` carry. `accepted` holds the external ids of the canonical records the
   * quality step let through: a record it quarantined must leave nothing here either.
   */
  persist(
    tx: Tx,
    write: { tenantId: string; records: readonly SourceRecord[]; accepted: ReadonlySet<string> },
  ): Promise<void>
}

/** Any connector, whatever its config type. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the registry holds connectors of every config type
export type AnyConnector = Connector<any>
