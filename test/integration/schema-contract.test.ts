import { execFile } from 'node:child_process'
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { databaseUrl } from '../helpers/db.js'

const run = promisify(execFile)

// GTM Clarity's scoring engine reads these tables by name: renaming a column breaks it.
const contract: Record<string, string[]> = {
  tenants: ['id', 'name', 'slug', 'settings', 'created_at', 'updated_at'],
  connectors: [
    'id',
    'tenant_id',
    'type',
    'status',
    'encrypted_credentials',
    'config',
    'cursor',
    'last_sync_at',
    'last_sync_error',
    'created_at',
    'updated_at',
  ],
  field_mappings: ['tenant_id', 'connector_id', 'entity_type', 'mappings', 'is_default'],
  people: [
    'tenant_id',
    'source',
    'external_id',
    'email',
    'first_name',
    'last_name',
    'title',
    'phone',
    'account_external_id',
    'source_data',
    'created_at',
    'updated_at',
    'deleted_at',
  ],
  accounts: [
    'tenant_id',
    'source',
    'external_id',
    'name',
    'domain',
    'industry',
    'employee_count',
    'annual_revenue',
    'source_data',
    'created_at',
    'updated_at',
    'deleted_at',
  ],
  activities: [
    'tenant_id',
    'source',
    'external_id',
    'type',
    'channel',
    'occurred_at',
    'person_external_id',
    'account_external_id',
    'properties',
    'source_data',
    'created_at',
    'updated_at',
    'deleted_at',
  ],
  sync_runs: [
    'id',
    'tenant_id',
    'connector_id',
    'mode',
    'status',
    'started_at',
    'finished_at',
    'pages',
    'created',
    'updated',
    'errors',
    'error',
  ],
  quarantine: [
    'tenant_id',
    'connector',
    'entity_type',
    'external_id',
    'reason',
    'raw_payload',
    'created_at',
  ],
  audit_log: [
    'id',
    'tenant_id',
    'user_id',
    'action',
    'resource',
    'resource_id',
    'changes',
    'metadata',
    'created_at',
  ],
  webhook_inbox: [
    'id',
    'tenant_id',
    'connector_id',
    'source',
    'event_id',
    'stream',
    'event_type',
    'occurred_at',
    'payload',
    'records',
    'received_at',
    'status',
    'attempts',
    'processed_at',
    'error',
  ],
}

describe('database schema contract', () => {
  let client: pg.Client
  beforeAll(async () => {
    client = new pg.Client({ connectionString: databaseUrl() })
    await client.connect()
  })
  afterAll(() => client.end())

  it('has every contracted table and column after migration', async () => {
    const res = await client.query<{ table_name: string; column_name: string }>(
      `select table_name, column_name from information_schema.columns where table_schema = 'public'`,
    )
    for (const [table, columns] of Object.entries(contract)) {
      const present = res.rows.filter((r) => r.table_name === table).map((r) => r.column_name)
      expect(present, `columns of ${table}`).toEqual(expect.arrayContaining(columns))
    }
  })

  it('types the contracted columns as the scoring engine expects', async () => {
    const res = await client.query<{ table_name: string; column_name: string; data_type: string }>(
      `select table_name, column_name, data_type from information_schema.columns
        where table_schema = 'public' and column_name in ('employee_count', 'annual_revenue', 'occurred_at', 'properties', 'source_data', 'settings', 'changes')`,
    )
    const type = (t: string, c: string) =>
      res.rows.find((r) => r.table_name === t && r.column_name === c)?.data_type
    expect(type('accounts', 'employee_count')).toBe('integer')
    expect(type('accounts', 'annual_revenue')).toBe('numeric')
    expect(type('activities', 'occurred_at')).toBe('timestamp with time zone')
    expect(type('activities', 'properties')).toBe('jsonb')
    expect(type('people', 'source_data')).toBe('jsonb')
    expect(type('tenants', 'settings')).toBe('jsonb')
    expect(type('audit_log', 'changes')).toBe('jsonb')
  })

  it('keys records by (tenant_id, source, external_id) and connections by (tenant_id, type)', async () => {
    const res = await client.query<{ table_name: string; columns: string }>(
      `select tc.table_name, string_agg(kcu.column_name, ',' order by kcu.ordinal_position) as columns
         from information_schema.table_constraints tc
         join information_schema.key_column_usage kcu
           on kcu.constraint_name = tc.constraint_name and kcu.table_schema = tc.table_schema
        where tc.constraint_type = 'UNIQUE' and tc.table_schema = 'public'
        group by tc.table_name, tc.constraint_name`,
    )
    const uniques = res.rows.map((r) => `${r.table_name}(${r.columns})`)
    expect(uniques).toEqual(
      expect.arrayContaining([
        'people(tenant_id,source,external_id)',
        'accounts(tenant_id,source,external_id)',
        'activities(tenant_id,source,external_id)',
        'connectors(tenant_id,type)',
        'field_mappings(tenant_id,connector_id,entity_type,stream)',
        'stream_state(tenant_id,connector_id,stream,partition)',
        'webhook_inbox(tenant_id,source,event_id)',
      ]),
    )
  })

  it('forces row-level security on every tenant table', async () => {
    const policies = await client.query<{ tablename: string }>(
      `select tablename from pg_policies where policyname = 'tenant_isolation'`,
    )
    expect(policies.rows.map((r) => r.tablename)).toEqual(
      expect.arrayContaining(Object.keys(contract)),
    )
    const res = await client.query<{
      relname: string
      relrowsecurity: boolean
      relforcerowsecurity: boolean
    }>(
      `select relname, relrowsecurity, relforcerowsecurity from pg_class
        where relnamespace = 'public'::regnamespace and relkind = 'r'`,
    )
    const tables = res.rows.filter((r) => r.relname !== '__drizzle_migrations')
    expect(tables.length).toBeGreaterThanOrEqual(Object.keys(contract).length)
    for (const t of tables) {
      expect(t, t.relname).toMatchObject({ relrowsecurity: true, relforcerowsecurity: true })
    }
  })

  it('has committed migrations that match the Drizzle schema', async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), 'gtm-migrations-'))
    try {
      await cp(path.resolve('db/migrations'), out, { recursive: true })
      const before = await readdir(out)
      const { stdout } = await run(
        'npx',
        [
          'drizzle-kit',
          'generate',
          '--dialect',
          'postgresql',
          '--schema',
          './db/schema/index.ts',
          '--out',
          // drizzle-kit prefixes the folder with './', so it must be relative.
          path.relative(path.resolve('.'), out),
          '--name',
          'drift',
        ],
        { cwd: path.resolve('.'), timeout: 60_000 },
      )
      expect(stdout).toMatch(/No schema changes/)
      expect(await readdir(out)).toEqual(before)
    } finally {
      await rm(out, { recursive: true, force: true })
    }
  })
})
