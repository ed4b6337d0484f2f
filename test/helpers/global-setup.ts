import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
import type { TestProject } from 'vitest/node'
import { startEmbeddedPostgres } from '../../db/embedded.js'
import { migrateDatabase } from '../../db/migrate.js'

declare module 'vitest' {
  export interface ProvidedContext {
    /** Owner URL of a freshly migrated database for this test run. */
    databaseUrl: string
  }
}

/**
 * One migrated database per test run: a new database on DATABASE_URL's server when it is set,
 * otherwise an embedded Postgres in a temporary directory.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env.DATABASE_URL
  if (external) {
    const name = `gtm_test_${process.pid}_${Date.now()}`
    const admin = new pg.Client({ connectionString: external })
    await admin.connect()
    await admin.query(`create database ${name}`)
    await admin.end()
    const url = new URL(external)
    url.pathname = `/${name}`
    await migrateDatabase(url.toString())
    project.provide('databaseUrl', url.toString())
    return async () => {
      const c = new pg.Client({ connectionString: external })
      await c.connect()
      await c.query(`drop database if exists ${name} with (force)`)
      await c.end()
    }
  }
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'gtm-test-pg-'))
  const embedded = await startEmbeddedPostgres({ dataDir, database: 'gtm_test', ephemeral: true })
  await migrateDatabase(embedded.url)
  project.provide('databaseUrl', embedded.url)
  return async () => {
    await embedded.stop()
    await rm(dataDir, { recursive: true, force: true })
  }
}
