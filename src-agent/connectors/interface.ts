import type { z } from 'zod'
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
}

export interface SyncOptions extends CredentialOptions {
  /**
   * This run reads everything: its first page gets a null cursor, later pages the cursor the
   * connector returned. A connector may pick a bulk strategy for it.
   */
  full?: boolean
  /** Records per page the connector should ask its source for. */
  pageSize?: number
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
  /** Checks the signature (in constant time) and the timestamp (against replays). */
  verify(request: WebhookRequest, credentials: Credentials): WebhookVerdict
  /** Reads a verified body into events. Pure: no I/O, never throws on bad input. */
  parse(rawBody: Buffer, headers: WebhookRequest['headers']): WebhookParseResult
}

/**
 * A data source. `sync` returns ONE page: the pipeline calls it again with the returned cursor
 * while `hasMore` is true, committing each page's rows and cursor in one transaction.
 * The cursor is opaque to everything but the connector that made it.
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
  authenticate(config: Config, options?: HealthOptions): Promise<AuthResult>
  sync(credentials: Credentials, cursor: string | null, options?: SyncOptions): Promise<SyncResult>
  /** The default field mappings for one entity type ([] when the connector does not produce it). */
  getSchema(entityType: EntityType): FieldMapping[]
  healthCheck(credentials: Credentials, options?: HealthOptions): Promise<ConnectorHealthStatus>
  /** Present when the connector can write updates back to its source. */
  readonly writeback?: WritebackCapability
  /** Present when the connector's source can push events (`gtm-agent webhooks serve`). */
  readonly webhooks?: WebhookCapability
}

/** Any connector, whatever its config type. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the registry holds connectors of every config type
export type AnyConnector = Connector<any>
