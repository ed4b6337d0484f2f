import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startSalesforceFake, type SalesforceFake } from '../../fakes/salesforce.js'
import { TEST_KEY_HEX } from '../../helpers/agent.js'
import { runCli, stderrLines } from '../../helpers/cli.js'
import { databaseUrl } from '../../helpers/db.js'

describe('gtm-agent with the built-in Salesforce connector', () => {
  let fake: SalesforceFake
  let dir: string
  const tenant = `sfcli-${randomBytes(4).toString('hex')}`
  const env = () => ({ DATABASE_URL: databaseUrl(), CONNECTOR_ENCRYPTION_KEY: TEST_KEY_HEX })

  beforeAll(async () => {
    fake = await startSalesforceFake()
    dir = await mkdtemp(path.join(os.tmpdir(), 'gtm-sf-cli-'))
  })
  afterAll(async () => {
    await fake.close()
    await rm(dir, { recursive: true, force: true })
  })

  it('connects with a config file, then syncs every object into Postgres', async () => {
    const configFile = path.join(dir, 'salesforce.json')
    await writeFile(
      configFile,
      JSON.stringify({
        ...fake.connectConfig(),
        bulkPollIntervalMs: 5,
      }),
    )
    const created = await runCli(['tenants', 'create', tenant, '--name', 'SF CLI'], env())
    expect(created.code, created.stderr).toBe(0)

    const connected = await runCli(
      ['connect', 'salesforce', '--tenant', tenant, '--config', configFile],
      env(),
    )
    expect(connected.code, connected.stderr).toBe(0)

    const synced = await runCli(['sync', 'salesforce', '--tenant', tenant, '--json'], env())
    expect(synced.code, synced.stderr).toBe(0)
    const summary = JSON.parse(synced.stdout) as Record<string, unknown>
    // 12 accounts, 30 contacts + 8 leads, 10 opportunities + 14 tasks + 6 events by default.
    expect(summary).toMatchObject({ status: 'succeeded', created: 80, updated: 0, errors: 0 })

    const again = await runCli(['sync', 'salesforce', '--tenant', tenant, '--json'], env())
    expect(JSON.parse(again.stdout)).toMatchObject({ status: 'succeeded', created: 0, updated: 0 })

    const health = await runCli(['health', 'salesforce', '--tenant', tenant, '--json'], env())
    expect(health.code, health.stderr).toBe(0)
    expect(JSON.parse(health.stdout)).toMatchObject({ status: 'healthy' })

    // No token or refresh token reaches the terminal.
    for (const out of [connected, synced, again, health]) {
      expect(out.stdout + out.stderr).not.toContain(fake.refreshToken)
      for (const token of fake.issuedTokens()) expect(out.stdout + out.stderr).not.toContain(token)
    }
  })

  it('refuses a config file that misses a required key, naming it', async () => {
    const configFile = path.join(dir, 'bad.json')
    await writeFile(configFile, JSON.stringify({ instanceUrl: fake.url, clientId: 'x' }))
    const result = await runCli(
      ['connect', 'salesforce', '--tenant', tenant, '--config', configFile],
      env(),
    )
    expect(result.code).toBe(1)
    const lines = stderrLines(result)
    expect(lines).toHaveLength(1)
    expect(lines[0]).toMatch(/refreshToken/)
  })
})
