import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrateDatabase, migrationsFolder } from '../../db/migrate.js'
import { startPagerFake, type PagerFake } from '../fakes/pager.js'
import { runCli, stderrLines, type CliResult } from '../helpers/cli.js'
import { databaseUrl } from '../helpers/db.js'

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const testConnectorModule = path.join(repoRoot, 'test/helpers/test-connector.ts')
const hexKey = (): string => randomBytes(32).toString('hex')

describe('gtm-agent CLI', () => {
  /** A migrated database the tests share; each test makes tenants of its own in it. */
  let sharedUrl: string
  let dir: string
  const databases: string[] = []
  const fakes: PagerFake[] = []
  /** The key credentials in the shared database are encrypted with. */
  const key = hexKey()

  const cli = (args: string[], env: Record<string, string | undefined> = {}) =>
    runCli(args, {
      DATABASE_URL: sharedUrl,
      GTM_CONNECTOR_MODULES: testConnectorModule,
      CONNECTOR_ENCRYPTION_KEY: key,
      ...env,
    })
  /** A file of its own in the temporary directory. */
  const file = async (name: string, content: string): Promise<string> => {
    const p = path.join(dir, `${randomBytes(4).toString('hex')}-${name}`)
    await writeFile(p, content)
    return p
  }
  /** A new database on the test server, dropped after the file: empty unless `migrated`. */
  const newDatabase = async (options: { migrated?: boolean } = {}): Promise<string> => {
    const name = `gtm_cli_${randomBytes(4).toString('hex')}`
    await adminQuery(`create database ${name}`)
    databases.push(name)
    const u = new URL(databaseUrl())
    u.pathname = `/${name}`
    if (options.migrated) await migrateDatabase(u.toString())
    return u.toString()
  }
  const pagerFake = async (): Promise<PagerFake> => {
    const fake = await startPagerFake({
      apiKey: `cli-secret-${randomBytes(6).toString('hex')}`,
      accounts: 5,
      people: 10,
      activities: 5,
    })
    fakes.push(fake)
    return fake
  }
  /** A tenant of its own, made with `tenants create`. */
  const newTenant = async (env: Record<string, string> = {}): Promise<string> => {
    const tenant = `cli-${randomBytes(4).toString('hex')}`
    const created = await cli(['tenants', 'create', tenant, '--name', 'Acme Corp'], env)
    expect(created.code, created.stderr).toBe(0)
    return tenant
  }
  /** A tenant of its own connected to a pager fake of its own, with `connect`. */
  const connectedTenant = async (env: Record<string, string> = {}) => {
    const fake = await pagerFake()
    const tenant = await newTenant(env)
    const config = await file(
      'config.json',
      JSON.stringify({ baseUrl: fake.url, apiKey: fake.apiKey, pageSize: 8 }),
    )
    const connected = await cli(
      ['connect', 'test-pages', '--tenant', tenant, '--config', config],
      env,
    )
    expect(connected.code, connected.stderr).toBe(0)
    return { tenant, fake }
  }

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'gtm-cli-'))
    sharedUrl = await newDatabase({ migrated: true })
  })
  afterAll(async () => {
    await Promise.all(fakes.map((f) => f.close()))
    if (dir) await rm(dir, { recursive: true, force: true })
    for (const name of databases) await adminQuery(`drop database if exists ${name} with (force)`)
  })

  it('migrates, then has nothing left to apply', async () => {
    const env = { DATABASE_URL: await newDatabase() }
    const first = await cli(['migrate'], env)
    expect(first).toMatchObject({ code: 0, stderr: '' })
    const journal = JSON.parse(
      await readFile(path.join(migrationsFolder, 'meta/_journal.json'), 'utf8'),
    ) as {
      entries: Array<{ tag: string }>
    }
    const tags = journal.entries.map((e) => e.tag)
    expect(tags.slice(0, 2)).toEqual(['0000_init', '0001_row_level_security'])
    expect(first.stdout).toBe(`Applied ${tags.length} migrations: ${tags.join(', ')}\n`)
    const again = await cli(['migrate'], env)
    expect(again.stdout).toBe('Nothing to apply: the database is up to date.\n')
  })

  it('creates and lists tenants', async () => {
    const tenant = `cli-${randomBytes(4).toString('hex')}`
    const created = await cli(['tenants', 'create', tenant, '--name', 'Acme Corp'])
    expect(created).toMatchObject({
      code: 0,
      stdout: `Created tenant "${tenant}" (Acme Corp).\n`,
      stderr: '',
    })
    const listed = await cli(['tenants', 'list', '--json'])
    expect(listed.code).toBe(0)
    const rows = JSON.parse(listed.stdout) as Array<{ id: string }>
    expect(rows.filter((t) => t.id === tenant)).toEqual([
      {
        id: tenant,
        name: 'Acme Corp',
        slug: tenant,
        createdAt: expect.stringMatching(/^\d{4}-/) as string,
      },
    ])
    const text = await cli(['tenants', 'list'])
    expect(text.stdout).toMatch(/^ID +NAME +SLUG +CREATED\n/)
    expect(text.stdout).toMatch(new RegExp(`^${tenant} +Acme Corp +${tenant} +\\d{4}-`, 'm'))

    const dup = await cli(['tenants', 'create', tenant, '--name', 'Again'])
    expectOneError(dup, `error: Tenant "${tenant}" already exists.`)
  })

  it('lists connectors with no database and no key', async () => {
    const result = await runCli(['connectors', '--json'], {
      GTM_CONNECTOR_MODULES: testConnectorModule,
    })
    expect(result).toMatchObject({ code: 0, stderr: '' })
    expect(JSON.parse(result.stdout)).toContainEqual({
      id: 'test-pages',
      name: 'Test pages',
      version: '1.0.0',
      authMethod: 'api_key',
      dataTypes: ['person', 'account', 'activity'],
      streams: [{ id: 'records', name: 'Test pages', entityType: 'person', partitioned: false }],
    })
  })

  it('connects, syncs, checks health and shows mappings', async () => {
    const fake = await pagerFake()
    const tenant = await newTenant()
    const config = await file(
      'config.json',
      JSON.stringify({ baseUrl: fake.url, apiKey: fake.apiKey, pageSize: 8 }),
    )
    const connected = await cli(['connect', 'test-pages', '--tenant', tenant, '--config', config])
    expect(connected).toMatchObject({ code: 0, stderr: '' })
    expect(connected.stdout).toMatch(`Connected test-pages for tenant "${tenant}" (healthy, `)

    const sync = await cli(['sync', 'test-pages', '--tenant', tenant, '--json'])
    expect(sync.stderr).toBe('')
    expect(sync.code).toBe(0)
    expect(JSON.parse(sync.stdout)).toMatchObject({
      status: 'succeeded',
      mode: 'incremental',
      pages: 3,
      created: 20,
      updated: 0,
      deleted: 0,
      errors: 0,
    })

    fake.update('person', 'p-1', { title: 'CEO' })
    const text = await cli(['sync', 'test-pages', '--tenant', tenant])
    expect(text.code).toBe(0)
    expect(text.stdout).toMatch(/^status: +succeeded$/m)
    expect(text.stdout).toMatch(/^created: +0$/m)
    expect(text.stdout).toMatch(/^updated: +1$/m)
    expect(text.stdout).toMatch(/^pages: +1$/m)

    const healthy = await cli(['health', 'test-pages', '--tenant', tenant, '--json'])
    expect(healthy.code).toBe(0)
    expect(JSON.parse(healthy.stdout)).toMatchObject({
      status: 'healthy',
      message: expect.any(String) as string,
    })

    const got = await cli([
      'mappings',
      'get',
      'test-pages',
      '--tenant',
      tenant,
      '--entity',
      'person',
    ])
    expect(got.code).toBe(0)
    const view = JSON.parse(got.stdout) as {
      mappings: Array<{ targetField: string; override: boolean }>
    }
    expect(view).toMatchObject({
      tenantId: tenant,
      connectorType: 'test-pages',
      entityType: 'person',
    })
    expect(view.mappings.find((m) => m.targetField === 'email')).toEqual({
      sourceField: 'email',
      targetField: 'email',
      transform: 'trim',
      override: false,
    })

    const overrides = await file(
      'person.json',
      JSON.stringify([{ sourceField: 'email', targetField: 'email', transform: 'lowercase' }]),
    )
    const set = await cli([
      'mappings',
      'set',
      'test-pages',
      '--tenant',
      tenant,
      '--entity',
      'person',
      '--file',
      overrides,
    ])
    expect(set.code).toBe(0)
    const after = JSON.parse(set.stdout) as typeof view
    expect(after.mappings.find((m) => m.targetField === 'email')).toMatchObject({
      transform: 'lowercase',
      override: true,
    })
    expect(after.mappings.filter((m) => m.override)).toHaveLength(1)

    const bad = await file(
      'bad-mapping.json',
      JSON.stringify([{ sourceField: 'x', targetField: 'shoeSize', transform: 'none' }]),
    )
    const refused = await cli([
      'mappings',
      'set',
      'test-pages',
      '--tenant',
      tenant,
      '--entity',
      'person',
      '--file',
      bad,
    ])
    expectOneError(
      refused,
      /^error: Mapping for person: target field "shoeSize" is not a canonical person field/,
    )

    const reset = await cli([
      'mappings',
      'reset',
      'test-pages',
      '--tenant',
      tenant,
      '--entity',
      'person',
    ])
    expect(reset).toMatchObject({ code: 0, stderr: '' })
    expect(reset.stdout).toMatch("to the connector's defaults")
  })

  it('rotates keys, then disconnects', async () => {
    // A database of its own: `keys rotate` walks every tenant.
    const oldKey = hexKey()
    const env = { DATABASE_URL: await newDatabase({ migrated: true }) }
    const { tenant } = await connectedTenant({ ...env, CONNECTOR_ENCRYPTION_KEY: oldKey })
    const withNew = { ...env, CONNECTOR_ENCRYPTION_KEY: hexKey() }

    const withoutOld = await cli(['health', 'test-pages', '--tenant', tenant], withNew)
    expectOneError(
      withoutOld,
      /^error: Stored credentials were encrypted with key [0-9a-f]{16}, which is not CONNECTOR_ENCRYPTION_KEY/,
    )

    const rotated = await cli(['keys', 'rotate'], {
      ...withNew,
      CONNECTOR_ENCRYPTION_KEYS_PREVIOUS: oldKey,
    })
    expect(rotated).toMatchObject({ code: 0, stderr: '' })
    expect(rotated.stdout).toMatch(
      /^Re-encrypted 1 credential with key [0-9a-f]{16}; 0 already used it \(1 tenant checked\)\.\n$/,
    )
    const healthy = await cli(['health', 'test-pages', '--tenant', tenant], withNew)
    expect(healthy.code).toBe(0)
    expect(healthy.stdout).toMatch(`test-pages for tenant "${tenant}": healthy`)

    const disconnected = await cli(['disconnect', 'test-pages', '--tenant', tenant], withNew)
    expect(disconnected).toMatchObject({ code: 0, stderr: '' })
    const gone = await cli(['health', 'test-pages', '--tenant', tenant], withNew)
    expectOneError(
      gone,
      `error: test-pages is not connected for tenant "${tenant}". Connect it with: gtm-agent connect test-pages --tenant ${tenant} --config <file.json>`,
    )
  })

  it('exits non-zero with the run error on one line when a sync fails', async () => {
    const { tenant, fake } = await connectedTenant()
    await fake.close()

    const failed = await cli(['sync', 'test-pages', '--tenant', tenant, '--json'])
    expectOneError(failed, /^error: Test pages could not be reached/)
    expect(JSON.parse(failed.stdout)).toMatchObject({ status: 'failed', pages: 0, created: 0 })
  })

  it('waits for the page in hand on the first Ctrl-C; the second aborts it and records the cancel', async () => {
    const { tenant, fake } = await connectedTenant()
    // Every page request now stalls far longer than this test may take.
    fake.setDelay(600_000)
    let secondSignalAt = 0
    let aliveAfterFirst: boolean | undefined
    const result = await runCli(
      ['sync', 'test-pages', '--tenant', tenant, '--json'],
      {
        DATABASE_URL: sharedUrl,
        GTM_CONNECTOR_MODULES: testConnectorModule,
        CONNECTOR_ENCRYPTION_KEY: key,
      },
      {
        onStart: (child) => {
          const timer = setInterval(() => {
            if (fake.requests.length === 0) return
            clearInterval(timer)
            child.kill('SIGINT')
            setTimeout(() => {
              aliveAfterFirst = child.exitCode === null && child.signalCode === null
              secondSignalAt = Date.now()
              child.kill('SIGINT')
            }, 1_500)
          }, 20)
          child.on('exit', () => clearInterval(timer))
        },
      },
    )
    const exitedAfterMs = Date.now() - secondSignalAt
    expect(aliveAfterFirst).toBe(true)
    expect(exitedAfterMs).toBeLessThan(10_000)
    expect(result.code).toBe(1)
    expect(stderrLines(result).at(-1)).toMatch(/^error: The sync was cancelled\. /)
    expect(JSON.parse(result.stdout)).toMatchObject({ status: 'failed', pages: 0 })
    // The run is recorded as cancelled, not left running.
    const client = new pg.Client({ connectionString: sharedUrl })
    await client.connect()
    try {
      const runs = await client.query<{ status: string; error: string }>(
        'select r.status, r.error from sync_runs r join connectors c on c.id = r.connector_id where c.tenant_id = $1',
        [tenant],
      )
      expect(runs.rows).toEqual([
        { status: 'failed', error: expect.stringMatching(/^The sync was cancelled\./) as string },
      ])
    } finally {
      await client.end()
    }
  })

  it('fails with one clear line for bad input', async () => {
    const fake = await pagerFake()
    const tenant = await newTenant()
    const missingKey = await file('missing-key.json', JSON.stringify({ baseUrl: fake.url }))
    const invalidJson = await file(
      'invalid.json',
      `{ "baseUrl": "${fake.url}", "apiKey": "${fake.apiKey}", }`,
    )
    const connectWith = (config: string, env: Record<string, string | undefined> = {}) =>
      cli(['connect', 'test-pages', '--tenant', tenant, '--config', config], env)

    const good = await file('good.json', JSON.stringify({ baseUrl: fake.url, apiKey: fake.apiKey }))
    const [missing, invalid, absent, noKey, shortKey, nonHex, unknown, noTenant, usage] =
      await Promise.all([
        connectWith(missingKey),
        connectWith(invalidJson),
        connectWith(path.join(dir, 'nope.json')),
        connectWith(good, { CONNECTOR_ENCRYPTION_KEY: undefined }),
        connectWith(good, { CONNECTOR_ENCRYPTION_KEY: 'abcd1234' }),
        connectWith(good, { CONNECTOR_ENCRYPTION_KEY: 'z'.repeat(64) }),
        cli(['sync', 'salesforce-ish', '--tenant', tenant]),
        cli(['connect', 'test-pages', '--tenant', 'no-such-tenant', '--config', good]),
        cli(['connect', 'test-pages', '--config', good]),
      ])
    expectOneError(missing, 'error: Invalid config for test-pages: "apiKey" is required')
    expectOneError(
      invalid,
      new RegExp(
        `^error: The config file ${escape(invalidJson)} is not valid JSON \\(line 1, column \\d+\\)\\.$`,
      ),
    )
    expect(invalid.stderr).not.toContain(fake.apiKey)
    expectOneError(
      absent,
      `error: Cannot read the config file ${path.join(dir, 'nope.json')}: it does not exist.`,
    )
    expectOneError(
      noKey,
      /^error: CONNECTOR_ENCRYPTION_KEY is not set\. Generate one with `openssl rand -hex 32`/,
    )
    expectOneError(
      shortKey,
      /^error: CONNECTOR_ENCRYPTION_KEY must be 64 hexadecimal characters \(32 bytes\), but it is 8 characters long/,
    )
    expectOneError(
      nonHex,
      /^error: CONNECTOR_ENCRYPTION_KEY must be 64 hexadecimal characters .* other than 0-9 and a-f/,
    )
    expect(nonHex.stderr).not.toContain('z'.repeat(64))
    expectOneError(
      unknown,
      /^error: Unknown connector "salesforce-ish"\. Known connectors: .*test-pages/,
    )
    expectOneError(
      noTenant,
      'error: Tenant "no-such-tenant" does not exist. Create it with: gtm-agent tenants create no-such-tenant --name "..."',
    )
    expect(usage.code).toBe(2)
    expect(stderrLines(usage)).toEqual(["error: required option '--tenant <id>' not specified"])
  })
})

// --- helpers ---

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&')
}

function expectOneError(result: CliResult, expected: string | RegExp): void {
  expect(result.code, result.stderr).toBe(1)
  const lines = stderrLines(result)
  expect(lines, result.stderr).toHaveLength(1)
  if (typeof expected === 'string') expect(lines[0]).toBe(expected)
  else expect(lines[0]).toMatch(expected)
}

async function adminQuery(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl() })
  await client.connect()
  try {
    await client.query(text)
  } finally {
    await client.end()
  }
}
