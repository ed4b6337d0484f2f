import { and, eq, sql, type SQL } from 'drizzle-orm'
import type { Tx } from '../../db/client.js'
import { connectors } from '../../db/schema/index.js'
import { AppError } from '../../shared/errors.js'
import type { AnyConnector, Credentials } from '../connectors/interface.js'
import { isSensitiveKey, registerSecret } from '../../shared/redact.js'
import { decryptCredentials, encryptCredentials, type Keyring } from '../secrets/crypto.js'

export type ConnectorRow = typeof connectors.$inferSelect

/**
 * How connectors.last_sync_error begins when the source refused the stored credentials (a
 * revoked or expired refresh token, a changed API key): the connection needs a Reconnect.
 */
export const NEEDS_REAUTH_PREFIX = 'needs re-auth: '

/** Whether the connection's last failure was the source refusing its credentials. */
export function needsReauth(row: Pick<ConnectorRow, 'status' | 'lastSyncError'>): boolean {
  return (
    row.status !== 'disconnected' && (row.lastSyncError?.startsWith(NEEDS_REAUTH_PREFIX) ?? false)
  )
}

/** The tenant's connectors row of a type, or undefined. */
export async function findConnection(
  tx: Tx,
  tenantId: string,
  connectorType: string,
): Promise<ConnectorRow | undefined> {
  const [row] = await tx
    .select()
    .from(connectors)
    .where(and(eq(connectors.tenantId, tenantId), eq(connectors.type, connectorType)))
  return row
}

/** A connected connection's row and decrypted credentials; every secret value is registered with the logger. */
export async function openConnection(
  tx: Tx,
  keyring: Keyring,
  tenantId: string,
  connectorType: string,
  secretKeys: readonly string[] = [],
): Promise<{ row: ConnectorRow; credentials: Credentials }> {
  const row = await findConnection(tx, tenantId, connectorType)
  if (!row || row.status === 'disconnected' || row.encryptedCredentials === null) {
    throw new AppError(
      'connector_not_connected',
      `${connectorType} is not connected for tenant "${tenantId}". Connect it with: gtm-agent connect ${connectorType} --tenant ${tenantId} --config <file.json>`,
    )
  }
  const credentials = decryptCredentials(keyring, row.encryptedCredentials, {
    tenantId,
    connectorType,
  })
  registerSecrets(credentials, secretKeys)
  return { row, credentials }
}

/** openConnection for a registered connector: its connection, its secret config keys redacted. */
export function openConnectorConnection(
  tx: Tx,
  keyring: Keyring,
  tenantId: string,
  connector: Pick<AnyConnector, 'id' | 'secretConfigKeys'>,
): Promise<{ row: ConnectorRow; credentials: Credentials }> {
  return openConnection(tx, keyring, tenantId, connector.id, connector.secretConfigKeys)
}

/**
 * Takes the connection's row lock for the rest of the transaction. The runs of one sync may end
 * at the same moment (a stream's last page is written while the next stream reads), and each
 * sets the connection's status and error from the other runs: taken first, the lock makes the
 * later one wait for the earlier one's commit and then see its run as ended (each statement
 * after it reads what was committed before it began), instead of both reading the other as
 * still running and leaving the connection 'syncing', or a success wiping another stream's error.
 *
 * The lock is the one the update of the row after it takes (no key column changes), not FOR
 * UPDATE: a page's transaction ends its run after writing rows that refer to the connection
 * (its stream_state row), and those hold a key-share lock on it, which FOR UPDATE would wait
 * for. Two streams' last pages ending their runs at once then deadlocked.
 */
export async function lockConnection(tx: Tx, connectorId: string): Promise<void> {
  await connectionRowLock(tx, connectorId)
}

/**
 * lockConnection's lock taken inside another statement: `lock` is a CTE to add to it and `taken`
 * a condition for its WHERE, true once the lock is held (a CTE no part of the statement reads is
 * never run).
 */
export function connectionLock(tx: Tx, connectorId: string) {
  const lock = tx.$with('connection_lock').as(connectionRowLock(tx, connectorId))
  const taken: SQL = sql`exists (select 1 from ${lock})`
  return { lock, taken }
}

function connectionRowLock(tx: Tx, connectorId: string) {
  return tx
    .select({ id: connectors.id })
    .from(connectors)
    .where(eq(connectors.id, connectorId))
    .for('no key update')
}

/** Encrypts credentials for one connection (tenant and connector type are bound in as associated data). */
export function sealCredentials(
  keyring: Keyring,
  tenantId: string,
  connectorType: string,
  credentials: Credentials,
  secretKeys: readonly string[] = [],
): string {
  registerSecrets(credentials, secretKeys)
  return encryptCredentials(keyring, credentials, { tenantId, connectorType })
}

/**
 * Registers the secret values inside credentials (under a secret-looking key or one of the
 * connector's `secretConfigKeys`, at any depth) so the logger never prints them anywhere.
 */
export function registerSecrets(
  value: unknown,
  secretKeys: readonly string[] = [],
  secret = false,
): void {
  if (typeof value === 'string') {
    if (secret) registerSecret(value)
  } else if (Array.isArray(value)) {
    for (const item of value) registerSecrets(item, secretKeys, secret)
  } else if (value && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      registerSecrets(item, secretKeys, secret || isSensitiveKey(key) || secretKeys.includes(key))
    }
  }
}
