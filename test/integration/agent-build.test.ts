import { execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildTime, newestSource } from '../../src-agent/bin/agent-entry.mjs'
import { startSalesforceFake, type SalesforceFake } from '../fakes/salesforce.js'
import { TEST_KEY_HEX } from '../helpers/agent.js'
import { repoRoot, runCli, stderrLines, type CliResult } from '../helpers/cli.js'
import { createDatabase } from '../helpers/db.js'
import { testTemporalCli, waitFor } from '../helpers/temporal.js'

const run = promisify(execFile)

/**
 * The agent as it ships: built by build/agent.mjs into plain JavaScript that node runs with no
 * TypeScript loader, and packed by `npm pack` into a tarball whose bin runs that build.
 */
describe('the built agent', () => {
  let dir: string
  let built: string
  let database: Awaited<ReturnType<typeof emptyDatabase>>
  const cli = (args: string[], env: Record<string, string> = {}): Promise<CliResult> =>
    runCli(args, { ...agentEnv(), ...env }, { entry: path.join(built, 'cli.js') })
  const agentEnv = (): Record<string, string> => ({
    DATABASE_URL: database.url,
    CONNECTOR_ENCRYPTION_KEY: TEST_KEY_HEX,
    GTM_DATA_DIR: path.join(dir, 'data'),
  })

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'gtm-built-'))
    built = path.join(dir, 'agent')
    await run(process.execPath, [path.join(repoRoot, 'build/agent.mjs'), built], { cwd: repoRoot })
    await linkDependencies(dir)
    database = await emptyDatabase()
  }, 120_000)
  afterAll(async () => {
    await database?.drop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('is JavaScript only, with the migrations and the workflow bundle beside it', async () => {
    const files = await listFiles(built)
    expect(files.filter((f) => /\.[cm]?tsx?$/.test(f))).toEqual([])
    expect(files).toEqual(
      expect.arrayContaining([
        'cli.js',
        'main.js',
        'build.json',
        'package.json',
        'workflow-bundle.js',
        'src-agent/cli/run.js',
        'src-agent/temporal/worker.js',
        'db/migrations/meta/_journal.json',
        ...(await sqlMigrations()).map((name) => `db/migrations/${name}`),
      ]),
    )
    // The entry for a host process does nothing when imported.
    const imported = await run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const m = await import(${JSON.stringify(path.join(built, 'main.js'))}); console.log(Object.keys(m).join(','))`,
      ],
      { cwd: dir },
    )
    expect(imported.stdout.trim()).toBe('runAgent')
  })

  it('prints its version and its connectors', async () => {
    const pkg = JSON.parse(await readFile(path.join(repoRoot, 'package.json'), 'utf8')) as {
      version: string
    }
    const version = await cli(['--version'])
    expect(version.code, version.stderr).toBe(0)
    expect(version.stdout.trim()).toBe(pkg.version)

    const connectors = await cli(['connectors', '--json'])
    expect(connectors.code, connectors.stderr).toBe(0)
    const ids = (JSON.parse(connectors.stdout) as Array<{ id: string }>).map((c) => c.id)
    expect(ids).toContain('salesforce')
  })

  it('migrates an empty database, then creates and lists a tenant', async () => {
    const migrations = await sqlMigrations()
    const migrated = await cli(['migrate'])
    expect(migrated.code, migrated.stderr).toBe(0)
    expect(migrated.stdout).toContain(`Applied ${migrations.length} migrations`)
    const again = await cli(['migrate'])
    expect(again.stdout).toContain('Nothing to apply')

    const created = await cli(['tenants', 'create', 'built-acme', '--name', 'Built Acme'])
    expect(created.code, created.stderr).toBe(0)
    const listed = await cli(['tenants', 'list', '--json'])
    expect(JSON.parse(listed.stdout)).toEqual(
      expect.arrayContaining([expect.objectContaining({ id: 'built-acme', name: 'Built Acme' })]),
    )
  })

  it('loads a JavaScript connector module into its own registry, and refuses a TypeScript one', async () => {
    // An extra connector built against the installed agent: the Salesforce definition re-registered
    // under another id, through the registry module of the build.
    const registry = path.join(built, 'src-agent/connectors/registry.js')
    const module = path.join(dir, 'acme-connector.mjs')
    await writeFile(
      module,
      `import { connectorRegistry } from ${JSON.stringify(registry)}\n` +
        `const salesforce = connectorRegistry.get('salesforce')\n` +
        `connectorRegistry.register({ ...salesforce, id: 'acme', name: 'Acme' })\n`,
    )
    const listed = await cli(['connectors', '--json'], { GTM_CONNECTOR_MODULES: module })
    expect(listed.code, listed.stderr).toBe(0)
    const ids = (JSON.parse(listed.stdout) as Array<{ id: string }>).map((c) => c.id)
    expect(ids).toEqual(expect.arrayContaining(['salesforce', 'acme']))

    const typeScript = path.join(repoRoot, 'test/helpers/test-connector.ts')
    const refused = await cli(['connectors', '--json'], { GTM_CONNECTOR_MODULES: typeScript })
    expect(refused.code).toBe(1)
    const lines = stderrLines(refused)
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(
      /^error: GTM_CONNECTOR_MODULES lists ".*test-connector\.ts", a TypeScript module/,
    )
  })

  it('syncs Salesforce through its worker, which runs the prebuilt workflow bundle', async () => {
    const fake: SalesforceFake = await startSalesforceFake()
    const env = { TEMPORAL_CLI_PATH: testTemporalCli() }
    let worker: ReturnType<typeof spawn> | undefined
    try {
      const config = path.join(dir, 'salesforce.json')
      await writeFile(config, JSON.stringify({ ...fake.connectConfig(), bulkPollIntervalMs: 5 }))
      const tenant = `built-sf-${randomBytes(3).toString('hex')}`
      expect((await cli(['tenants', 'create', tenant, '--name', 'SF'])).code).toBe(0)
      const connected = await cli(['connect', 'salesforce', '--tenant', tenant, '--config', config])
      expect(connected.code, connected.stderr).toBe(0)

      let output = ''
      worker = spawn(process.execPath, [path.join(built, 'cli.js'), 'worker'], {
        cwd: dir,
        env: {
          PATH: process.env.PATH ?? '',
          HOME: os.homedir(),
          ...agentEnv(),
          ...env,
          LOG_LEVEL: 'info',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      })
      const exited = new Promise<number | string>((resolve) =>
        worker!.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
      )
      worker.stdout!.on('data', (c: Buffer) => (output += c.toString()))
      worker.stderr!.on('data', (c: Buffer) => (output += c.toString()))
      await waitFor(() => output.includes('"msg":"worker started"') || worker!.exitCode !== null, {
        timeoutMs: 60_000,
        what: 'the built worker to start',
      })
      expect(output, output.slice(-3000)).toContain('"msg":"worker started"')
      expect(output).toContain(
        `"workflows":${JSON.stringify(path.join(built, 'workflow-bundle.js'))}`,
      )

      const synced = await cli(
        ['sync', 'salesforce', '--tenant', tenant, '--via-temporal', '--json'],
        env,
      )
      expect(synced.code, synced.stderr + output.slice(-3000)).toBe(0)
      expect(JSON.parse(synced.stdout)).toMatchObject({ status: 'succeeded' })
      // 12 accounts, 30 contacts + 8 leads, 10 opportunities + 14 tasks + 6 events by default.
      expect(await countRows(database.url, tenant)).toEqual({
        accounts: 12,
        people: 38,
        activities: 30,
      })

      worker.kill('SIGTERM')
      expect(await exited, output.slice(-3000)).toBe(0)
    } finally {
      if (worker && worker.exitCode === null && worker.signalCode === null) worker.kill('SIGKILL')
      await fake.close()
    }
  }, 120_000)
})

describe('npm pack', () => {
  let dir: string
  let database: Awaited<ReturnType<typeof emptyDatabase>>

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'gtm-pack-'))
    database = await emptyDatabase()
    // `npm run build` (which `npm test` runs first) leaves it up to date; a stale one is rebuilt.
    const builtAt = buildTime()
    if (builtAt === undefined || newestSource() > builtAt) {
      await run('npm', ['run', 'build:agent'], { cwd: repoRoot })
    }
  }, 120_000)
  afterAll(async () => {
    await database?.drop()
    if (dir) await rm(dir, { recursive: true, force: true })
  })

  it('yields a tarball whose gtm-agent runs the build with no TypeScript and no tsx', async () => {
    const packed = await run('npm', ['pack', '--json', '--pack-destination', dir], {
      cwd: repoRoot,
    })
    const [info] = JSON.parse(packed.stdout) as Array<{
      filename: string
      files: Array<{ path: string }>
    }>
    const files = info!.files.map((f) => f.path)
    expect(files).toEqual(
      expect.arrayContaining([
        'package.json',
        'src-agent/bin/gtm-agent.mjs',
        'src-agent/bin/agent-entry.mjs',
        'build/install-temporal.mjs',
        'out/agent/cli.js',
        'out/agent/main.js',
        'out/agent/build.json',
        'out/agent/workflow-bundle.js',
        'out/agent/src-agent/temporal/worker.js',
        ...(await sqlMigrations()).map((name) => `out/agent/db/migrations/${name}`),
      ]),
    )
    // Only the agent: no sources, no desktop app. npm always packs the file package.json's
    // `main` names (the desktop's main-process entry, once `npm run build` made it): that one
    // file is all of the app that comes along.
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.mts'))).toEqual([])
    expect(
      files.filter(
        (f) =>
          !/^(out\/agent\/|src-agent\/bin\/|build\/|package\.json$|README\.md$)/.test(f) &&
          f !== 'out/main/index.js',
      ),
    ).toEqual([])

    // Unpacked beside a node_modules of the dependencies without tsx, as an install has them.
    await run('tar', ['-xzf', path.join(dir, info!.filename), '-C', dir])
    await linkDependencies(dir)
    const pkg = path.join(dir, 'package')
    const noTsx = await run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "import('tsx').then(() => console.log('found'), () => console.log('missing'))",
      ],
      { cwd: pkg },
    )
    expect(noTsx.stdout.trim()).toBe('missing')

    const bin = path.join(pkg, 'src-agent/bin/gtm-agent.mjs')
    const env = {
      DATABASE_URL: database.url,
      CONNECTOR_ENCRYPTION_KEY: TEST_KEY_HEX,
      GTM_DATA_DIR: path.join(dir, 'data'),
    }
    const version = await runCli(['--version'], env, { entry: bin })
    expect(version.code, version.stderr).toBe(0)
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/)
    const migrated = await runCli(['migrate'], env, { entry: bin })
    expect(migrated.code, migrated.stderr).toBe(0)
    expect(migrated.stdout).toContain(`Applied ${(await sqlMigrations()).length} migrations`)
    const created = await runCli(['tenants', 'create', 'packed', '--name', 'Packed'], env, {
      entry: bin,
    })
    expect(created.code, created.stderr).toBe(0)
    expect(created.stdout).toContain('Created tenant "packed"')
  }, 120_000)
})

/** `dir/node_modules`: links to the repository's packages, tsx left out. */
async function linkDependencies(dir: string): Promise<void> {
  const modules = path.join(dir, 'node_modules')
  await mkdir(modules)
  for (const name of await readdir(path.join(repoRoot, 'node_modules'))) {
    if (name === 'tsx' || name.startsWith('.')) continue
    await symlink(path.join(repoRoot, 'node_modules', name), path.join(modules, name))
  }
}

/** A new database with nothing in it, on the test server. */
function emptyDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  return createDatabase({ prefix: 'gtm_built', migrated: false })
}

async function sqlMigrations(): Promise<string[]> {
  return (await readdir(path.join(repoRoot, 'db/migrations'))).filter((f) => f.endsWith('.sql'))
}

async function listFiles(root: string, under = ''): Promise<string[]> {
  const files: string[] = []
  for (const entry of await readdir(path.join(root, under), { withFileTypes: true })) {
    const rel = under ? `${under}/${entry.name}` : entry.name
    if (entry.isDirectory()) files.push(...(await listFiles(root, rel)))
    else files.push(rel)
  }
  return files
}

/** Rows of the tenant, counted as the tables' owner. */
async function countRows(
  url: string,
  tenant: string,
): Promise<{ accounts: number; people: number; activities: number }> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const count = async (table: string): Promise<number> => {
      const res = await client.query<{ n: number }>(
        `select count(*)::int as n from ${table} where tenant_id = $1`,
        [tenant],
      )
      return res.rows[0]!.n
    }
    return {
      accounts: await count('accounts'),
      people: await count('people'),
      activities: await count('activities'),
    }
  } finally {
    await client.end()
  }
}
