import { sql } from 'drizzle-orm'
import { AppError } from '../shared/errors.js'
import type { Db, Tx } from './client.js'

const tenantIdPattern = /^[a-z0-9][a-z0-9_-]{0,62}$/

/** Whether a string is acceptable as a tenant id: lower-case letters, digits, `-` and `_`. */
export function isValidTenantId(id: string): boolean {
  return tenantIdPattern.test(id)
}

/** How a tenant transaction commits (see withTenant). */
export interface TenantTransactionOptions {
  /**
   * The transaction holds work its source can give again (a sync's run, its pages with their
   * cursors, its end): its commit does not wait for Postgres to flush it to disk
   * (`synchronous_commit` off, for this transaction only). Should the Postgres server itself
   * crash, the last fraction of a second of such commits may be lost, each whole, as if it had
   * rolled back, and the next sync reads those pages again from the cursor that survived.
   * Nothing else may use it: a credential, a setting or an acknowledged webhook event must be on
   * disk when its commit returns.
   */
  replayable?: boolean
}

/**
 * Runs `fn` in a transaction scoped to one tenant: row-level security shows and accepts only
 * that tenant's rows. The only way agent code reaches tenant data.
 */
export async function withTenant<T>(
  db: Db,
  tenantId: string,
  fn: (tx: Tx) => Promise<T>,
  options: TenantTransactionOptions = {},
): Promise<T> {
  if (!isValidTenantId(tenantId)) {
    throw new AppError(
      'tenant_required',
      `"${tenantId}" is not a valid tenant id: use lower-case letters, digits, "-" and "_" (at most 63).`,
    )
  }
  return db.transaction(async (tx) => {
    // is_local = true: each setting ends with the transaction, so a pooled connection never
    // carries one tenant's id (or a sync's way of committing) into another's work. Both settings
    // in one round trip.
    const replayable = options.replayable
      ? sql`, set_config('synchronous_commit', 'off', true)`
      : sql``
    await tx.execute(sql`select set_config('app.tenant_id', ${tenantId}, true)${replayable}`)
    return fn(tx)
  })
}

/**
 * withTenant for a sync's own work (opening its run, each page with its cursor, its end), which
 * the source can give again: its commit does not wait for the disk (`replayable`).
 */
export async function withSyncWork<T>(
  db: Db,
  tenantId: string,
  fn: (tx: Tx) => Promise<T>,
): Promise<T> {
  return withTenant(db, tenantId, fn, { replayable: true })
}
