import type { z } from 'zod'
import type {
  AuthMethod,
  ConnectorHealthStatus,
  EntityType,
  FieldMapping,
  SyncResult,
} from '../../shared/schemas.js'
import type { Logger } from '../logging/logger.js'

/** What a connector keeps to reach its source: tokens, API keys. Encrypted at rest, never logged. */
export type Credentials = Record<string, unknown>

export interface AuthResult {
  credentials: Credentials
  expiresAt?: Date
}

export interface SyncOptions {
  /**
   * This run reads everything: its first page gets a null cursor, later pages the cursor the
   * connector returned. A connector may pick a bulk strategy for it.
   */
  full?: boolean
  /** Records per page the connector should ask its source for. */
  pageSize?: number
  signal?: AbortSignal
  log?: Logger
  /** Called when the connector obtained new credentials (a refreshed token) that must be persisted. */
  onCredentialsChanged?: (credentials: Credentials) => Promise<void>
}

export interface HealthOptions {
  signal?: AbortSignal
  log?: Logger
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
}

/** Any connector, whatever its config type. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the registry holds connectors of every config type
export type AnyConnector = Connector<any>
