import { randomBytes } from 'node:crypto'
import { inject } from 'vitest'
import { createDb, type DbHandle } from '../../db/client.js'
import { withTenant } from '../../db/tenant.js'
import { tenants } from '../../db/schema/index.js'

/** Owner URL of this run's migrated database. */
export function databaseUrl(): string {
  return inject('databaseUrl')
}

/** A pool that works as the agent role, like the agent does. */
export function agentDb(): DbHandle {
  return createDb(databaseUrl())
}

/** A pool that works as the tables' owner (superuser here): for checks that must see everything. */
export function ownerDb(): DbHandle {
  return createDb(databaseUrl(), { asOwner: true })
}

/** A tenant id no other test uses. */
export function uniqueTenantId(prefix = 't'): string {
  return `${prefix}-${randomBytes(5).toString('hex')}`
}

/** Inserts a tenant row directly (tests that are not about tenant creation). */
export async function seedTenant(handle: DbHandle, id = uniqueTenantId()): Promise<string> {
  await withTenant(handle.db, id, (tx) => tx.insert(tenants).values({ id, name: id, slug: id }))
  return id
}
