import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { inject } from 'vitest'
import { migrateDatabase } from '../../db/migrate.js'
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

/**
 * A database of its own on the test server, empty or with the migrations applied: for processes
 * whose work must not reach other test files' rows (a worker's startup sweep), or a first
 * `migrate`. `drop` removes it.
 */
export async function createDatabase(options: {
  prefix: string
  migrated: boolean
}): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `${options.prefix}_${process.pid}_${randomBytes(3).toString('hex')}`
  const admin = async (statement: string): Promise<void> => {
    const client = new pg.Client({ connectionString: databaseUrl() })
    await client.connect()
    try {
      await client.query(statement)
    } finally {
      await client.end()
    }
  }
  await admin(`create database ${name}`)
  const url = new URL(databaseUrl())
  url.pathname = `/${name}`
  if (options.migrated) await migrateDatabase(url.toString())
  return { url: url.toString(), drop: () => admin(`drop database if exists ${name} with (force)`) }
}
