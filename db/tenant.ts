import { sql } from 'drizzle-orm'
import { AppError } from '../shared/errors.js'
import type { Db, Tx } from './client.js'

const tenantIdPattern = /^[a-z0-9][a-z0-9_-]{0,62}$/

/** Whether a string is acceptable as a tenant id: lower-case letters, digits, `-` and `_`. */
export function isValidTenantId(id: string): boolean {
  return tenantIdPattern.test(id)
}

/**
 * Runs `fn` in a transaction scoped to one tenant: row-level security shows and accepts only
 * that tenant's rows. The only way agent code reaches tenant data.
 */
export async function withTenant<T>(
  db: Db,
  tenantId: string,
  fn: (tx: Tx) => Promise<T>,
): Promise<T> {
  if (!isValidTenantId(tenantId)) {
    throw new AppError(
      'tenant_required',
      `"${tenantId}" is not a valid tenant id: use lower-case letters, digits, "-" and "_" (at most 63).`,
    )
  }
  return db.transaction(async (tx) => {
    // is_local = true: the setting ends with the transaction, so a pooled connection never
    // carries one tenant's id into another's work.
    await tx.execute(sql`select set_config('app.tenant_id', ${tenantId}, true)`)
    return fn(tx)
  })
}
