import { existsSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { runCli } from '../helpers/cli.js'

describe('gtm-agent without DATABASE_URL (embedded Postgres)', () => {
  let dataDir: string

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'gtm-embedded-'))
  })
  afterAll(async () => {
    await rm(dataDir, { recursive: true, force: true })
  })

  it(
    'creates the cluster in GTM_DATA_DIR, migrates it, and keeps data between runs',
    { timeout: 180_000 },
    async () => {
      const migrate = await runCli(['migrate'], { GTM_DATA_DIR: dataDir })
      expect(migrate.stderr).toBe('')
      expect(migrate.code).toBe(0)
      expect(migrate.stdout).toMatch(
        new RegExp(
          `^Applied \\d+ migrations \\(embedded Postgres in ${escape(path.join(dataDir, 'postgres'))}\\): 0000_init, `,
        ),
      )
      expect(existsSync(path.join(dataDir, 'postgres', 'PG_VERSION'))).toBe(true)

      const created = await runCli(['tenants', 'create', 'acme', '--name', 'Acme'], {
        GTM_DATA_DIR: dataDir,
      })
      expect(created).toMatchObject({
        code: 0,
        stdout: 'Created tenant "acme" (Acme).\n',
        stderr: '',
      })

      const listed = await runCli(['tenants', 'list', '--json'], { GTM_DATA_DIR: dataDir })
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
      expect(existsSync(path.join(dataDir, 'postgres', 'postmaster.pid'))).toBe(false)
    },
  )
})

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&')
}
