/** Connecting a tenant to a source, disconnecting it, and checking that it still works. */
import { eq, sql } from 'drizzle-orm'
import type { z } from 'zod'
import type { Db } from '../../db/client.js'
import { toDbError } from '../../db/errors.js'
import { connectors } from '../../db/schema/index.js'
import { withTenant } from '../../db/tenant.js'
import { AppError, ConfigError, VendorError, describeError } from '../../shared/errors.js'
import type { ConnectorHealthStatus, ConnectorStatus } from '../../shared/schemas.js'
import { recordAudit } from '../audit/audit.js'
import type { AnyConnector, HealthOptions, SourceField } from '../connectors/interface.js'
import { defaultMappings, findStream } from '../connectors/streams.js'
import type { ConnectorRegistry } from '../connectors/registry.js'
import type { Logger } from '../logging/logger.js'
import {
  findConnection,
  openConnectorConnection,
  registerSecrets,
  sealCredentials,
  type ConnectorRow,
} from '../pipeline/connection.js'
import { credentialHooks } from '../pipeline/credential-lock.js'
import type { Keyring } from '../secrets/crypto.js'
import { requireTenant } from '../pipeline/tenants.js'

export interface ConnectionDeps {
  db: Db
  registry: ConnectorRegistry
  keyring: Keyring
  log: Logger
}

export interface ConnectInput {
  tenantId: string
  connectorType: string
  /** The parsed JSON of the config file; checked against the connector's configSchema. */
  configJson: unknown
  userId: string
  /** How the credentials were obtained: 'sign-in' through the browser, else from a config. */
  via?: 'sign-in'
}

export interface ConnectResult {
  connectorId: string
  /** 'connected', or 'error' when the health check said the source is down. */
  status: ConnectorStatus
  /** True when this created the connection, false when it replaced an earlier one. */
  created: boolean
  health: ConnectorHealthStatus
}

/**
 * Checks the config, authenticates, health-checks, then stores the connection (credentials
 * encrypted, secret config keys removed from `config`) and its audit row in one transaction.
 */
export async function connect(deps: ConnectionDeps, input: ConnectInput): Promise<ConnectResult> {
  const { tenantId, connectorType } = input
  const connector = deps.registry.get(connectorType)
  const config = parseConfig(connector, input.configJson)
  // Before any vendor call, so the config's secrets are hidden from every log line that follows.
  registerSecrets(config, connector.secretConfigKeys)
  await withTenant(deps.db, tenantId, (tx) => requireTenant(tx, tenantId))

  const log = deps.log.child({ tenantId, connectorType })
  const auth = await connector.authenticate(config, { log })
  let credentials = auth.credentials
  registerSecrets(credentials, connector.secretConfigKeys)
  // The health check may renew a session that expired since sign-in: what is stored is the newest.
  const health = await checkHealth(connector, credentials, log, {
    onCredentialsChanged: (next) => {
      registerSecrets(next, connector.secretConfigKeys)
      credentials = next
      return Promise.resolve()
    },
  })
  const status: ConnectorStatus = health.status === 'down' ? 'error' : 'connected'
  const sealed = sealCredentials(
    deps.keyring,
    tenantId,
    connectorType,
    credentials,
    connector.secretConfigKeys,
  )
  const storedConfig = withoutKeys(config, connector.secretConfigKeys)
  const lastSyncError = status === 'error' ? `Health check failed: ${health.message}` : null

  try {
    return await withTenant(deps.db, tenantId, async (tx) => {
      await requireTenant(tx, tenantId)
      const before = await findConnection(tx, tenantId, connectorType)
      const [row] = await tx
        .insert(connectors)
        .values({
          tenantId,
          type: connectorType,
          status,
          encryptedCredentials: sealed,
          config: storedConfig,
          lastSyncError,
        })
        .onConflictDoUpdate({
          target: [connectors.tenantId, connectors.type],
          // The cursor is kept: reconnecting (new key, new token) resumes the incremental sync.
          set: {
            status,
            encryptedCredentials: sealed,
            config: storedConfig,
            lastSyncError,
            updatedAt: sql`now()`,
          },
        })
        .returning()
      if (!row)
        throw new AppError('internal', `Storing the ${connectorType} connection returned no row.`)
      await recordAudit(tx, {
        tenantId,
        userId: input.userId,
        action: before ? 'connector.update' : 'connector.create',
        resource: 'connector',
        resourceId: row.id,
        ...(before ? { before: auditView(before) } : {}),
        after: auditView(row),
        metadata: {
          connectorType,
          health: health.status,
          ...(input.via ? { via: input.via } : {}),
        },
      })
      return { connectorId: row.id, status, created: !before, health }
    })
  } catch (err) {
    if (err instanceof AppError) throw err
    throw toDbError(err, `storing the ${connectorType} connection of tenant "${tenantId}"`)
  }
}

/** Marks a connection disconnected and drops its credentials; the cursor and mappings stay. */
export async function disconnect(
  deps: Pick<ConnectionDeps, 'db' | 'registry'>,
  input: { tenantId: string; connectorType: string; userId: string },
): Promise<{ connectorId: string }> {
  const { tenantId, connectorType } = input
  return withTenant(deps.db, tenantId, async (tx) => {
    await requireTenant(tx, tenantId)
    const before = await findConnection(tx, tenantId, connectorType)
    if (!before) {
      // An unknown type gets the registry's message, which lists the known ones.
      deps.registry.get(connectorType)
      throw new AppError(
        'connector_not_connected',
        `${connectorType} is not connected for tenant "${tenantId}", so there is nothing to disconnect.`,
      )
    }
    const [row] = await tx
      .update(connectors)
      .set({ status: 'disconnected', encryptedCredentials: null, updatedAt: sql`now()` })
      .where(eq(connectors.id, before.id))
      .returning()
    if (!row) throw new AppError('internal', `Disconnecting ${connectorType} updated no row.`)
    await recordAudit(tx, {
      tenantId,
      userId: input.userId,
      action: 'connector.disconnect',
      resource: 'connector',
      resourceId: row.id,
      before: auditView(before),
      after: auditView(row),
      metadata: { connectorType },
    })
    return { connectorId: row.id }
  })
}

/** Decrypts the stored credentials and asks the connector whether its source works. Read-only. */
export async function health(
  deps: ConnectionDeps,
  input: { tenantId: string; connectorType: string },
): Promise<ConnectorHealthStatus> {
  const { tenantId, connectorType } = input
  const connector = deps.registry.get(connectorType)
  const { row, credentials } = await withTenant(deps.db, tenantId, async (tx) => {
    await requireTenant(tx, tenantId)
    return openConnectorConnection(tx, deps.keyring, tenantId, connector)
  })
  // A health check may refresh an expired token: it is stored like a sync's refresh.
  const hooks = credentialHooks(
    { handle: { db: deps.db }, keyring: deps.keyring },
    { tenantId, connector, connectorId: row.id },
  )
  return checkHealth(connector, credentials, deps.log.child({ tenantId, connectorType }), hooks)
}

/**
 * The fields a stream's records carry, as the mapping editor lists them: asked of the source
 * (custom fields included) when the connector can, else the fields its default mappings read.
 * Read-only, like `health`.
 */
export async function sourceFields(
  deps: ConnectionDeps,
  input: { tenantId: string; connectorType: string; stream: string },
): Promise<SourceField[]> {
  const { tenantId, connectorType } = input
  const connector = deps.registry.get(connectorType)
  const stream = findStream(connector, input.stream)
  if (!connector.listSourceFields) {
    const paths = new Set(
      connector.dataTypes.flatMap((entityType) =>
        defaultMappings(connector, stream, entityType).map((m) => m.sourceField),
      ),
    )
    return [...paths].map((path) => ({ path, label: path, type: 'unknown' }))
  }
  const { row, credentials } = await withTenant(deps.db, tenantId, async (tx) => {
    await requireTenant(tx, tenantId)
    return openConnectorConnection(tx, deps.keyring, tenantId, connector)
  })
  const hooks = credentialHooks(
    { handle: { db: deps.db }, keyring: deps.keyring },
    { tenantId, connector, connectorId: row.id },
  )
  return connector.listSourceFields(credentials, stream.id, {
    ...hooks,
    log: deps.log.child({ tenantId, connectorType }),
  })
}

/** The connector's config, parsed; a failure names every failing key path. */
export function parseConfig(connector: AnyConnector, configJson: unknown): unknown {
  const result = (connector.configSchema as z.ZodType).safeParse(configJson)
  if (result.success) return result.data
  const problems = result.error.issues.map((issue) => describeIssue(issue))
  throw new ConfigError(
    'config_invalid',
    `Invalid config for ${connector.id}: ${problems.join('; ')}`,
  )
}

// --- implementation ---

/** A health check never throws here: a refused login or an unreachable source is "down". */
export async function checkHealth(
  connector: AnyConnector,
  credentials: Record<string, unknown>,
  log: Logger,
  hooks: Omit<HealthOptions, 'log'> = {},
): Promise<ConnectorHealthStatus> {
  const started = performance.now()
  try {
    return await connector.healthCheck(credentials, { ...hooks, log })
  } catch (err) {
    if (!(err instanceof VendorError)) throw err
    return {
      status: 'down',
      latencyMs: performance.now() - started,
      checkedAt: new Date(),
      message: describeError(err),
      details: { code: err.code },
    }
  }
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const where = issue.path.length === 0 ? 'the config' : `"${issue.path.map(String).join('.')}"`
  if (issue.code === 'invalid_type' && /received undefined$/.test(issue.message)) {
    return `${where} is required`
  }
  return `${where}: ${issue.message}`
}

function withoutKeys(config: unknown, keys: readonly string[]): Record<string, unknown> {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) return {}
  return Object.fromEntries(Object.entries(config).filter(([key]) => !keys.includes(key)))
}

/** What the audit log keeps of a connection: never the credentials, not even encrypted. */
function auditView(row: ConnectorRow): Record<string, unknown> {
  return {
    type: row.type,
    status: row.status,
    config: row.config,
    lastSyncError: row.lastSyncError,
  }
}
