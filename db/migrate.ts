import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { drizzle } from 'drizzle-orm/node-postgres'
import { migrate } from 'drizzle-orm/node-postgres/migrator'
import pg from 'pg'
import { DbError } from '../shared/errors.js'

/** Where the committed SQL migrations live. */
export const migrationsFolder = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  'migrations',
)

// Any constant: concurrent migrators (two agents starting at once) wait for each other.
const MIGRATION_LOCK = 4_172_001

/** Applies every pending migration, as the URL's user (who then owns the tables). */
export async function migrateDatabase(url: string): Promise<{ applied: number }> {
  const client = new pg.Client({ connectionString: url })
  try {
    await client.connect()
  } catch (cause) {
    throw new DbError(
      'db_unavailable',
      `Cannot connect to Postgres for migration: ${describe(cause)}`,
      {
        cause,
      },
    )
  }
  try {
    await client.query('select pg_advisory_lock($1)', [MIGRATION_LOCK])
    const before = await countApplied(client)
    await migrate(drizzle({ client }), { migrationsFolder })
    const after = await countApplied(client)
    return { applied: after - before }
  } catch (cause) {
    throw new DbError('db_query_failed', `Migration failed: ${describe(cause)}`, { cause })
  } finally {
    await client.end().catch(() => undefined)
  }
}

async function countApplied(client: pg.Client): Promise<number> {
  const exists = await client.query<{ t: string | null }>(
    `select to_regclass('drizzle.__drizzle_migrations')::text as t`,
  )
  if (!exists.rows[0]?.t) return 0
  const res = await client.query<{ n: string }>(
    'select count(*)::text as n from drizzle.__drizzle_migrations',
  )
  return Number(res.rows[0]?.n ?? 0)
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** How many migrations this build ships (the journal's entries): what a current database has applied. */
export function shippedMigrationCount(): number {
  const journal = JSON.parse(
    readFileSync(path.join(migrationsFolder, 'meta', '_journal.json'), 'utf8'),
  ) as { entries: unknown[] }
  return journal.entries.length
}
