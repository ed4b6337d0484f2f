import { eq, sql } from 'drizzle-orm'
import type { DbHandle } from '../../db/client.js'
import { toDbError } from '../../db/errors.js'
import { withTenant } from '../../db/tenant.js'
import { AppError } from '../../shared/errors.js'
import { connectors } from '../../db/schema/index.js'
import { recordAudit } from '../audit/audit.js'
import type { AnyConnector, CredentialOptions, Credentials } from '../connectors/interface.js'
import type { Keyring } from '../secrets/crypto.js'
import { openConnection, sealCredentials } from './connection.js'

export interface CredentialLockDeps {
  handle: Pick<DbHandle, 'db'>
  keyring: Keyring
  tenantId: string
  connectorType: string
  /** The connector's secretConfigKeys: their values are registered with the logger on read. */
  secretKeys: readonly string[]
}

/** See `SyncOptions.credentialLock`. */
export type CredentialLock = <T>(fn: (latest: Credentials) => Promise<T>) => Promise<T>

/** How long a caller waits for another process's refresh before giving up. */
const LOCK_WAIT = '60s'

/**
 * A per-connection credential lock: `fn` runs inside a tenant transaction holding
 * `pg_advisory_xact_lock` on the connection, and gets the credentials as stored right now
 * (re-read and decrypted after the lock was granted). Whoever refreshes a token inside persists
 * it (onCredentialsChanged) before `fn` returns; the lock is released when the transaction
 * ends, so the next waiter reads the new token and has nothing left to refresh. The lock spans
 * processes (every agent and app process shares the database) and is dropped by Postgres if
 * the holder dies.
 */
export function createCredentialLock(deps: CredentialLockDeps): CredentialLock {
  const key = `credentials:${deps.tenantId}:${deps.connectorType}`
  return async <T>(fn: (latest: Credentials) => Promise<T>): Promise<T> => {
    try {
      return await withTenant(deps.handle.db, deps.tenantId, async (tx) => {
        await tx.execute(sql.raw(`set local lock_timeout = '${LOCK_WAIT}'`))
        await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${key}, 0))`)
        const { credentials } = await openConnection(
          tx,
          deps.keyring,
          deps.tenantId,
          deps.connectorType,
          deps.secretKeys,
        )
        return fn(credentials)
      })
    } catch (err) {
      // Errors of `fn` (a refused refresh token) pass through unchanged; only the lock's own
      // database failures are wrapped, without their parameters.
      if (err instanceof AppError || !isDatabaseError(err)) throw err
      throw toDbError(err, `waiting for the ${deps.connectorType} credential lock`)
    }
  }
}

function isDatabaseError(err: unknown): boolean {
  let current: unknown = err
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return true
    if (current.message.startsWith('Failed query')) return true
    current = current.cause
  }
  return false
}

/**
 * The credential options every call on a stored connection passes to its connector: refreshes
 * run under the connection's credential lock, and refreshed credentials are sealed, stored and
 * audited at once (rotation-safe: the newest refresh token is never lost).
 */
export function credentialHooks(
  deps: { handle: Pick<DbHandle, 'db'>; keyring: Keyring },
  target: { tenantId: string; connector: AnyConnector; connectorId: string },
): Required<Pick<CredentialOptions, 'credentialLock' | 'onCredentialsChanged'>> {
  const { tenantId, connector, connectorId } = target
  return {
    credentialLock: createCredentialLock({
      handle: deps.handle,
      keyring: deps.keyring,
      tenantId,
      connectorType: connector.id,
      secretKeys: connector.secretConfigKeys,
    }),
    onCredentialsChanged: async (credentials) => {
      const sealed = sealCredentials(
        deps.keyring,
        tenantId,
        connector.id,
        credentials,
        connector.secretConfigKeys,
      )
      await withTenant(deps.handle.db, tenantId, async (tx) => {
        await tx
          .update(connectors)
          .set({ encryptedCredentials: sealed, updatedAt: sql`now()` })
          .where(eq(connectors.id, connectorId))
        await recordAudit(tx, {
          tenantId,
          userId: 'system',
          action: 'connector.credentials_refresh',
          resource: 'connector',
          resourceId: connectorId,
          metadata: { connectorType: connector.id },
        })
      })
    },
  }
}
