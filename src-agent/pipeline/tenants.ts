/**
 * Reading the tenant directory: every tenant (for the scheduler and `tenants list`), and the
 * check that one exists before anything is stored for it.
 */
import { eq, sql } from 'drizzle-orm'
import { z } from 'zod'
import type { Db, Tx } from '../../db/client.js'
import { toDbError } from '../../db/errors.js'
import { tenants } from '../../db/schema/index.js'
import { AppError } from '../../shared/errors.js'

/** One row of the tenant directory. */
export const tenantSummarySchema = z.object({
  id: z.string(),
  name: z.string(),
  slug: z.string(),
  createdAt: z.date(),
})
export type TenantSummary = z.infer<typeof tenantSummarySchema>

/** Every tenant, ordered by id, read through gtm_tenant_directory() (the agent cannot list rows). */
export async function listTenants(db: Db): Promise<TenantSummary[]> {
  let rows: unknown[]
  try {
    const result = await db.execute(
      sql`select id, name, slug, created_at as "createdAt" from gtm_tenant_directory()`,
    )
    rows = result.rows
  } catch (err) {
    throw toDbError(err, 'listing tenants')
  }
  return z.array(directoryRowSchema).parse(rows)
}

/** Throws 'tenant_unknown' (with the command that fixes it) unless the tenant exists. */
export async function requireTenant(tx: Tx, tenantId: string): Promise<void> {
  const found = await tx.select({ id: tenants.id }).from(tenants).where(eq(tenants.id, tenantId))
  if (found.length === 0) {
    throw new AppError(
      'tenant_unknown',
      `Tenant "${tenantId}" does not exist. Create it with: gtm-agent tenants create ${tenantId} --name "..."`,
    )
  }
}

// --- implementation ---

/** Drizzle's node-postgres driver hands timestamps of raw queries over as text. */
const directoryRowSchema = tenantSummarySchema.extend({ createdAt: z.coerce.date() })
