/** Creating tenants: the operator's directory of customer organisations (read in pipeline/tenants.ts). */
import { eq } from 'drizzle-orm'
import type { Db } from '../../db/client.js'
import { postgresError, toDbError } from '../../db/errors.js'
import { tenants } from '../../db/schema/index.js'
import { isValidTenantId, withTenant } from '../../db/tenant.js'
import { AppError, ConfigError } from '../../shared/errors.js'
import { recordAudit } from '../audit/audit.js'
import type { TenantSummary } from '../pipeline/tenants.js'

export interface CreateTenantInput {
  id: string
  name: string
  /** Defaults to the id. */
  slug?: string
  userId: string
}

/** Creates a tenant and records `tenant.create` in the same transaction. */
export async function createTenant(db: Db, input: CreateTenantInput): Promise<TenantSummary> {
  const id = input.id
  const name = input.name.trim()
  const slug = input.slug ?? id
  checkId(id, 'tenant id')
  checkId(slug, 'slug')
  if (name === '') {
    throw new ConfigError('config_invalid', `Tenant "${id}" needs a name: pass --name "<name>".`)
  }
  try {
    return await withTenant(db, id, async (tx) => {
      const existing = await tx.select({ id: tenants.id }).from(tenants).where(eq(tenants.id, id))
      if (existing.length > 0) throw tenantExists(id)
      const [row] = await tx.insert(tenants).values({ id, name, slug }).returning()
      if (!row) throw new AppError('internal', `Creating tenant "${id}" returned no row.`)
      const created = { id: row.id, name: row.name, slug: row.slug, createdAt: row.createdAt }
      await recordAudit(tx, {
        tenantId: id,
        userId: input.userId,
        action: 'tenant.create',
        resource: 'tenant',
        resourceId: id,
        after: { id, name, slug },
      })
      return created
    })
  } catch (err) {
    if (err instanceof AppError) throw err
    const pg = postgresError(err)
    // unique_violation: another process created the same id, or another tenant (invisible
    // under row-level security) already uses this slug.
    if (pg.code === '23505') {
      throw /slug/.test(pg.message)
        ? new AppError(
            'tenant_exists',
            `Another tenant already uses the slug "${slug}". Choose another with --slug.`,
            { cause: err },
          )
        : tenantExists(id, err)
    }
    throw toDbError(err, `creating tenant "${id}"`)
  }
}

function checkId(value: string, what: string): void {
  if (!isValidTenantId(value)) {
    throw new ConfigError(
      'config_invalid',
      `"${value}" is not a valid ${what}: use lower-case letters, digits, "-" and "_" (at most 63, starting with a letter or digit).`,
    )
  }
}

function tenantExists(id: string, cause?: unknown): AppError {
  return new AppError('tenant_exists', `Tenant "${id}" already exists.`, { cause })
}
