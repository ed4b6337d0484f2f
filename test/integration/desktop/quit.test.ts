import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startPagerFake, type PagerFake } from '../../fakes/pager.js'
import { uniqueTenantId } from '../../helpers/db.js'
import { callData, startAgentProcess, type AgentUnderTest } from '../../helpers/desktop.js'

const env = { GTM_CONNECTOR_MODULES: 'test/helpers/test-connector.ts' }

describe('quitting the app while a sync runs', () => {
  let fake: PagerFake
  const agents: AgentUnderTest[] = []
  beforeAll(async () => {
    fake = await startPagerFake({ people: 200, accounts: 0, activities: 0, delayMs: 100 })
  })
  afterAll(async () => {
    for (const agent of agents) await agent.close()
    await fake?.close()
  })

  it('stops the agent gracefully after the page in hand, and the next sync resumes from there', async () => {
    const logged: string[] = []
    const first = await startAgentProcess({
      env,
      supervisor: { log: (level, message) => logged.push(`${level}: ${message}`) },
    })
    agents.push(first)
    const tenantId = uniqueTenantId('quit')
    callData(await first.supervisor.call('tenants:create', { id: tenantId, name: 'Quit' }))
    callData(
      await first.supervisor.call('connections:connect', {
        tenantId,
        connectorType: 'test-pages',
        config: { baseUrl: fake.url, apiKey: fake.apiKey, pageSize: 10 },
      }),
    )
    let pages = 0
    let quitting: Promise<void> | undefined
    const sync = first.supervisor.call(
      'sync:run',
      { tenantId, connectorType: 'test-pages' },
      {
        timeoutMs: null,
        onEvent: (_event, progress) => {
          pages = (progress as { pages: number }).pages
          // The app quits three pages in.
          if (pages === 3 && !quitting) quitting = first.supervisor.stop()
        },
      },
    )
    const result = await sync
    await quitting
    // The agent answered before it exited: the sync stopped, with what it had committed.
    expect(result.ok).toBe(true)
    const stopped = callData(result)
    expect(stopped.status).not.toBe('succeeded')
    expect(stopped.error).toMatch(/^The sync was cancelled\. /)
    expect(stopped.pages).toBeGreaterThanOrEqual(3)
    expect(stopped.pages).toBeLessThan(20)
    expect(first.supervisor.status.state).toBe('stopped')
    expect(logged.filter((line) => line.includes('did not stop cleanly'))).toEqual([])

    // The app starts again: the next sync reads on from the last committed page.
    const requestsBefore = fake.requests.length
    const second = await startAgentProcess({ env })
    agents.push(second)
    const resumed = callData(
      await second.supervisor.call(
        'sync:run',
        { tenantId, connectorType: 'test-pages' },
        { timeoutMs: null },
      ),
    )
    expect(resumed).toMatchObject({ status: 'succeeded' })
    expect(fake.requests[requestsBefore]).toBeGreaterThan(0)
    expect(stopped.created + resumed.created).toBe(200)
    const [connection] = callData(await second.supervisor.call('connections:list', { tenantId }))
    expect(connection?.records.person).toBe(200)
  })
})
