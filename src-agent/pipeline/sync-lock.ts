import type { DbHandle } from '../../db/client.js'
import { AppError } from '../../shared/errors.js'

/**
 * A connection's sync lock: a session advisory lock, so that two syncs of one connection never
 * run at once, across the agent's processes and workers.
 */
interface SyncLock {
  release(): Promise<void>
}

/** Runs `fn` holding the connection's sync lock; a second caller gets 'sync_in_progress'. */
export async function withSyncLock<T>(
  handle: DbHandle,
  tenantId: string,
  connectorType: string,
  fn: () => Promise<T>,
): Promise<T> {
  const lock = await acquireSyncLock(handle, tenantId, connectorType)
  try {
    return await fn()
  } finally {
    await lock.release()
  }
}

/** The advisory lock key of a connection's sync, from its name in parameter $1. */
export const SYNC_LOCK_KEY = 'hashtextextended($1, 0)'

/** The name of a connection's sync lock, hashed into its key by SYNC_LOCK_KEY. */
export function syncLockName(tenantId: string, connectorType: string): string {
  return `sync:${tenantId}:${connectorType}`
}

/** A session advisory lock per connection: two syncs of one connection never run at once. */
async function acquireSyncLock(
  handle: DbHandle,
  tenantId: string,
  connectorType: string,
): Promise<SyncLock> {
  const client = await handle.pool.connect()
  try {
    const res = await client.query<{ locked: boolean }>(
      `select pg_try_advisory_lock(${SYNC_LOCK_KEY}) as locked`,
      [syncLockName(tenantId, connectorType)],
    )
    if (!res.rows[0]?.locked) {
      client.release()
      throw new AppError(
        'sync_in_progress',
        `A sync of ${connectorType} for tenant "${tenantId}" is already running.`,
      )
    }
  } catch (err) {
    if (err instanceof AppError) throw err
    client.release()
    throw err
  }
  return {
    release: async () => {
      try {
        await client.query(`select pg_advisory_unlock(${SYNC_LOCK_KEY})`, [
          syncLockName(tenantId, connectorType),
        ])
        client.release()
      } catch {
        // A broken connection drops its locks anyway.
        client.release(true)
      }
    },
  }
}
