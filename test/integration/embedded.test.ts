import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startPagerFake } from '../fakes/pager.js'
import { TEST_KEY_HEX } from '../helpers/agent.js'
import { repoRoot, runCli, stderrLines } from '../helpers/cli.js'

describe('gtm-agent without DATABASE_URL (embedded Postgres)', () => {
  const data = tempDataDir('gtm-embedded-')

  it(
    'creates the cluster in GTM_DATA_DIR, migrates it, and keeps data between runs',
    { timeout: 180_000 },
    async () => {
      const migrate = await runCli(['migrate'], { GTM_DATA_DIR: data.dir })
      expect(migrate.stderr).toBe('')
      expect(migrate.code).toBe(0)
      expect(migrate.stdout).toMatch(
        new RegExp(
          `^Applied \\d+ migrations \\(embedded Postgres in ${escape(path.join(data.dir, 'postgres'))}\\): 0000_init, `,
        ),
      )
      expect(existsSync(path.join(data.dir, 'postgres', 'PG_VERSION'))).toBe(true)

      const created = await runCli(['tenants', 'create', 'acme', '--name', 'Acme'], {
        GTM_DATA_DIR: data.dir,
      })
      expect(created).toMatchObject({
        code: 0,
        stdout: 'Created tenant "acme" (Acme).\n',
        stderr: '',
      })

      const listed = await runCli(['tenants', 'list', '--json'], { GTM_DATA_DIR: data.dir })
      expect(listed).toMatchObject({ code: 0, stderr: '' })
      expect(JSON.parse(listed.stdout)).toEqual([
        {
          id: 'acme',
          name: 'Acme',
          slug: 'acme',
          createdAt: expect.stringMatching(/^\d{4}-/) as string,
        },
      ])

      // Each command stopped the server it started: no postmaster is left running.
      expect(existsSync(path.join(data.dir, 'postgres', 'postmaster.pid'))).toBe(false)
    },
  )
})

describe('gtm-agent failures on the embedded Postgres', () => {
  const data = tempDataDir('gtm-embedded-fail-')

  it(
    'exits non-zero with one error line on every failure path, and stops Postgres',
    {
      timeout: 180_000,
    },
    async () => {
      const env = { GTM_DATA_DIR: data.dir, CONNECTOR_ENCRYPTION_KEY: TEST_KEY_HEX }
      expect((await runCli(['migrate'], env)).code).toBe(0)
      const failures: Array<{ args: string[]; code: number; error: RegExp }> = [
        { args: ['frobnicate'], code: 2, error: /^error: unknown command 'frobnicate'$/ },
        {
          args: ['tenants', 'create', 'BAD!', '--name', 'Bad'],
          code: 1,
          error: /^error: "BAD!" is not a valid tenant id/,
        },
        {
          args: ['health', 'salesforce', '--tenant', 'nobody'],
          code: 1,
          error: /^error: Tenant "nobody" does not exist/,
        },
        {
          args: ['sync', 'salesforce', '--tenant', 'nobody'],
          code: 1,
          error: /^error: salesforce is not connected for tenant "nobody"/,
        },
        {
          args: ['connect', 'salesforce', '--tenant', 'nobody', '--config', '/nonexistent.json'],
          code: 1,
          error: /^error: Cannot read the config file \/nonexistent\.json/,
        },
        {
          args: ['keys', 'rotate', '--tenant', 'nobody'],
          code: 1,
          error: /^error: Tenant "nobody" does not exist; nothing was rotated\.$/,
        },
      ]
      for (const failure of failures) {
        const result = await runCli(failure.args, env)
        expect({ args: failure.args, code: result.code }).toEqual({
          args: failure.args,
          code: failure.code,
        })
        expect(stderrLines(result)).toEqual([expect.stringMatching(failure.error)])
        expect(existsSync(path.join(data.dir, 'postgres', 'postmaster.pid'))).toBe(false)
      }
      // A database that cannot start is a failure too, not a hang or a silent success.
      const blocked = path.join(data.dir, 'not-a-directory')
      await writeFile(blocked, '')
      const unstartable = await runCli(['tenants', 'list'], { ...env, GTM_DATA_DIR: blocked })
      expect(unstartable.code).toBe(1)
      expect(stderrLines(unstartable).at(-1)).toMatch(/^error: /)
    },
  )
})

describe('Ctrl-C during a sync on the embedded Postgres', () => {
  const data = tempDataDir('gtm-embedded-sigint-')

  it(
    'stops after the page in hand, records the cancel, stops Postgres, and resumes next time',
    { timeout: 180_000 },
    async () => {
      const fake = await startPagerFake({ accounts: 100, delayMs: 300 })
      try {
        const env = {
          GTM_DATA_DIR: data.dir,
          CONNECTOR_ENCRYPTION_KEY: TEST_KEY_HEX,
          GTM_CONNECTOR_MODULES: path.join(repoRoot, 'test/helpers/test-connector.ts'),
        }
        const config = path.join(data.dir, 'pages.json')
        await writeFile(
          config,
          JSON.stringify({ baseUrl: fake.url, apiKey: fake.apiKey, pageSize: 10 }),
        )
        expect((await runCli(['tenants', 'create', 'acme', '--name', 'Acme'], env)).code).toBe(0)
        const connected = await runCli(
          ['connect', 'test-pages', '--tenant', 'acme', '--config', config],
          env,
        )
        expect(connected.code, connected.stderr).toBe(0)

        const before = fake.requests.length
        const interrupted = await runCli(
          ['sync', 'test-pages', '--tenant', 'acme', '--json'],
          env,
          {
            onStart: (child) => {
              // Once the second page is being fetched, the first is committed or about to be.
              const timer = setInterval(() => {
                if (fake.requests.length >= before + 2) {
                  clearInterval(timer)
                  child.kill('SIGINT')
                }
              }, 20)
              child.on('exit', () => clearInterval(timer))
            },
          },
        )
        expect(interrupted.code).toBe(1)
        expect(stderrLines(interrupted).at(-1)).toMatch(/^error: The sync was cancelled\. /)
        const summary = JSON.parse(interrupted.stdout) as { status: string; created: number }
        expect(summary.status).toBe('failed')
        expect(summary.created).toBeGreaterThan(0)
        expect(summary.created).toBeLessThan(100)
        // The embedded server was stopped on the way out, not killed with the process.
        expect(existsSync(path.join(data.dir, 'postgres', 'postmaster.pid'))).toBe(false)

        const resumed = await runCli(['sync', 'test-pages', '--tenant', 'acme', '--json'], env)
        expect(resumed.code, resumed.stderr).toBe(0)
        expect(JSON.parse(resumed.stdout)).toMatchObject({
          status: 'succeeded',
          created: 100 - summary.created,
        })
      } finally {
        await fake.close()
      }
    },
  )
})

/** A data directory of its own for each describe block, removed after it. */
function tempDataDir(prefix: string): { readonly dir: string } {
  const holder = { dir: '' }
  beforeAll(async () => {
    holder.dir = await mkdtemp(path.join(os.tmpdir(), prefix))
  })
  afterAll(async () => {
    await rm(holder.dir, { recursive: true, force: true })
  })
  return holder
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&')
}
