import { execFileSync } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startSalesforceFake, type SalesforceFake } from '../../fakes/salesforce.js'
import { uniqueTenantId } from '../../helpers/db.js'
import {
  callData,
  firstSyncDone,
  startAgentProcess,
  type AgentUnderTest,
} from '../../helpers/desktop.js'
import { waitFor } from '../../helpers/temporal.js'

/** Command lines of the running processes that mention `text`. */
function processesMentioning(text: string): string[] {
  return execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })
    .split('\n')
    .filter((line) => line.includes(text) && !line.startsWith('ps '))
}

/**
 * The app as installed, with nothing configured: the agent starts its own embedded Postgres and
 * local Temporal dev server in its data folder, runs its own worker, and stops them all on quit.
 */
describe('the desktop agent with nothing set up', () => {
  let fake: SalesforceFake
  let agent: AgentUnderTest
  let dataDir: string

  beforeAll(async () => {
    fake = await startSalesforceFake()
    agent = await startAgentProcess({
      // No DATABASE_URL, no TEMPORAL_ADDRESS, the worker on: the defaults of an installed app.
      env: { DATABASE_URL: undefined, GTM_AGENT_WORKER: undefined },
    })
    dataDir = agent.dataDir
  })
  afterAll(async () => {
    await agent?.close()
    await fake?.close()
  })

  it('runs its own Postgres, Temporal and worker; a connection made from the app syncs; quitting stops them all', async () => {
    const info = await waitFor(
      async () => {
        const result = callData(await agent.supervisor.call('agent:info', undefined))
        if (result.worker === 'stopped')
          throw new Error(`the worker stopped: ${result.workerError}`)
        return result.worker === 'running' ? result : undefined
      },
      { timeoutMs: 90_000, intervalMs: 250, what: 'the agent’s worker to start' },
    )
    expect(info.database.kind).toBe('embedded')
    expect(processesMentioning(dataDir).length).toBeGreaterThanOrEqual(2)

    const tenantId = uniqueTenantId('default')
    callData(await agent.supervisor.call('tenants:create', { id: tenantId, name: 'Default' }))
    callData(
      await agent.supervisor.call('connections:connect', {
        tenantId,
        connectorType: 'salesforce',
        config: { ...fake.connectConfig(), bulkPollIntervalMs: 5 },
      }),
    )
    // The first sync starts at once, on the agent's own worker.
    const synced = await firstSyncDone(agent, tenantId, 'the first sync')
    expect(synced.records).toEqual({ person: 38, account: 12, activity: 30 })
    const schedule = callData(
      await agent.supervisor.call('schedules:get', { tenantId, connectorType: 'salesforce' }),
    )
    expect(schedule).toMatchObject({ cron: '*/15 * * * *', paused: false })

    await agent.supervisor.stop()
    expect(agent.supervisor.status.state).toBe('stopped')
    // Postgres and the Temporal dev server went with it.
    await waitFor(() => processesMentioning(dataDir).length === 0, {
      timeoutMs: 20_000,
      what: `the processes under ${dataDir} to stop: ${processesMentioning(dataDir).join('; ')}`,
    })
  })
})
