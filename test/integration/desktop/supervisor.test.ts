import { afterEach, describe, expect, it } from 'vitest'
import type { AgentStatus } from '../../../src-main/agent/supervisor.js'
import { startSalesforceFake, type SalesforceFake } from '../../fakes/salesforce.js'
import { uniqueTenantId } from '../../helpers/db.js'
import { startAgentProcess, type AgentUnderTest } from '../../helpers/desktop.js'
import { freePort, portIsFree } from '../../helpers/ports.js'

/** Resolves once `predicate` holds for the supervisor's status, or fails after `ms`. */
async function statusBecomes(
  agent: AgentUnderTest,
  predicate: (status: AgentStatus) => boolean,
  ms = 20_000,
): Promise<AgentStatus> {
  const until = Date.now() + ms
  while (Date.now() < until) {
    const status = agent.supervisor.status
    if (predicate(status)) return status
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  throw new Error(`status stayed ${JSON.stringify(agent.supervisor.status)}`)
}

describe('main supervising the agent process', () => {
  let agent: AgentUnderTest | undefined
  let fake: SalesforceFake | undefined
  afterEach(async () => {
    await agent?.close()
    await fake?.close()
    agent = undefined
    fake = undefined
  })

  it('restarts a killed agent with backoff, and the next call succeeds', async () => {
    const statuses: AgentStatus[] = []
    agent = await startAgentProcess({
      supervisor: { backoffMs: () => 100, onStatus: (s) => statuses.push(s) },
    })
    const first = await agent.supervisor.call('agent:info', undefined)
    expect(first.ok).toBe(true)
    const firstPid = first.ok ? first.data.pid : 0
    process.kill(firstPid, 'SIGKILL')

    await statusBecomes(agent, (s) => s.state === 'ready' && s.restarts === 1)
    const next = await agent.supervisor.call('agent:info', undefined)
    expect(next.ok).toBe(true)
    expect(next.ok && next.data.pid).not.toBe(firstPid)
    expect(statuses.map((s) => s.state)).toEqual([
      'starting',
      'ready',
      'restarting',
      'restarting',
      'ready',
    ])
    const restarting = statuses.find((s) => s.state === 'restarting')!
    expect(restarting.lastError).toMatch(/^The agent exited unexpectedly \(killed\)\.$/)
    expect(restarting.nextStartAt).not.toBeNull()
  })

  it('a call waiting when the agent dies fails as retryable, and a retry after the restart succeeds', async () => {
    agent = await startAgentProcess({ supervisor: { backoffMs: () => 100 } })
    const port = await freePort()
    fake = await startSalesforceFake({ callbackUrls: [`http://127.0.0.1:${port}/callback`] })
    const tenantId = uniqueTenantId('sup')
    const created = await agent.supervisor.call('tenants:create', { id: tenantId, name: 'S' })
    expect(created.ok).toBe(true)
    const info = await agent.supervisor.call('agent:info', undefined)
    // A sign-in waits for the browser until the agent dies under it.
    const waiting = agent.supervisor.call('signin:run', {
      tenantId,
      connectorType: 'salesforce',
      config: { loginUrl: fake.url, clientId: fake.clientId },
      redirectPort: port,
    })
    await new Promise((resolve) => setTimeout(resolve, 300))
    process.kill(info.ok ? info.data.pid : 0, 'SIGKILL')
    const result = await waiting
    expect(result).toEqual({
      ok: false,
      error: {
        code: 'agent_unavailable',
        message: expect.stringContaining('stopped unexpectedly') as unknown,
        retryable: true,
      },
    })
    const retried = await agent.supervisor.call('connections:list', { tenantId })
    expect(retried).toEqual({ ok: true, data: [] })
  })

  it('stops restarting at the fourth crash within the window, and "Restart agent" starts it again', async () => {
    agent = await startAgentProcess({ supervisor: { backoffMs: () => 50 } })
    for (let crash = 1; crash <= 4; crash++) {
      const info = await agent.supervisor.call('agent:info', undefined)
      expect(info.ok, `before crash ${crash}`).toBe(true)
      process.kill(info.ok ? info.data.pid : 0, 'SIGKILL')
      if (crash < 4) await statusBecomes(agent, (s) => s.state === 'ready' && s.restarts === crash)
    }
    const crashed = await statusBecomes(agent, (s) => s.state === 'crashed')
    expect(crashed).toMatchObject({ restarts: 3, pid: null, nextStartAt: null })
    expect(crashed.lastError).toMatch(
      /crashed 4 times within 5 minutes, so it is not restarted again\. Choose "Restart agent"/,
    )
    // Nothing restarts it by itself; a call says why, and that retrying will not help.
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(agent.supervisor.status.state).toBe('crashed')
    const refused = await agent.supervisor.call('agent:info', undefined)
    expect(refused).toMatchObject({
      ok: false,
      error: { code: 'agent_unavailable', retryable: false },
    })

    agent.supervisor.restart()
    await statusBecomes(agent, (s) => s.state === 'ready')
    expect((await agent.supervisor.call('agent:info', undefined)).ok).toBe(true)
  })

  it('a call past its deadline is a timeout error, and the agent stops the work (the sign-in port closes)', async () => {
    agent = await startAgentProcess()
    const port = await freePort()
    fake = await startSalesforceFake({ callbackUrls: [`http://127.0.0.1:${port}/callback`] })
    const tenantId = uniqueTenantId('tmo')
    expect((await agent.supervisor.call('tenants:create', { id: tenantId, name: 'T' })).ok).toBe(
      true,
    )
    const result = await agent.supervisor.call(
      'signin:run',
      {
        tenantId,
        connectorType: 'salesforce',
        config: { loginUrl: fake.url, clientId: fake.clientId },
        redirectPort: port,
      },
      { timeoutMs: 800 },
    )
    expect(result).toMatchObject({
      ok: false,
      error: {
        code: 'rpc_timeout',
        message: expect.stringMatching(
          /^The agent did not answer "signin:run" within 1 s\./,
        ) as unknown,
        retryable: true,
      },
    })
    const until = Date.now() + 5_000
    while (!(await portIsFree(port)) && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(await portIsFree(port)).toBe(true)
    // The agent is still there and answers.
    expect((await agent.supervisor.call('agent:info', undefined)).ok).toBe(true)
  })

  it('cancelling a call cancels the work in the agent, and says so', async () => {
    agent = await startAgentProcess()
    const port = await freePort()
    fake = await startSalesforceFake({ callbackUrls: [`http://127.0.0.1:${port}/callback`] })
    const tenantId = uniqueTenantId('cnl')
    expect((await agent.supervisor.call('tenants:create', { id: tenantId, name: 'C' })).ok).toBe(
      true,
    )
    const controller = new AbortController()
    const states: string[] = []
    const call = agent.supervisor.call(
      'signin:run',
      {
        tenantId,
        connectorType: 'salesforce',
        config: { loginUrl: fake.url, clientId: fake.clientId },
        redirectPort: port,
      },
      {
        signal: controller.signal,
        onEvent: (_event, data) => {
          const phase = (data as { phase: string }).phase
          states.push(phase)
          if (phase === 'waiting') controller.abort()
        },
      },
    )
    const result = await call
    expect(result.ok).toBe(false)
    expect(states).toEqual(['waiting', 'cancelled'])
    // The agent's own answer came back, and the port was closed before it did.
    expect(await portIsFree(port)).toBe(true)
  })
})
