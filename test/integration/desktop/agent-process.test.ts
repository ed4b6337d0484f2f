import { and, eq } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { auditLog, connectors } from '../../../db/schema/index.js'
import { withTenant } from '../../../db/tenant.js'
import { agentRpc } from '../../../shared/rpc.js'
import type { AgentEventName } from '../../../shared/rpc.js'
import { startSalesforceFake, type SalesforceFake } from '../../fakes/salesforce.js'
import { ownerDb, uniqueTenantId } from '../../helpers/db.js'
import type { CallResult } from '../../../shared/contract.js'
import { callData, startAgentProcess, type AgentUnderTest } from '../../helpers/desktop.js'

describe('the agent process, spawned as the app spawns it, over RPC', () => {
  let fake: SalesforceFake
  let agent: AgentUnderTest
  const owner = ownerDb()

  beforeAll(async () => {
    fake = await startSalesforceFake()
    agent = await startAgentProcess()
  })
  afterAll(async () => {
    await agent?.close()
    await fake?.close()
    await owner.close()
  })

  const auditRows = (tenantId: string) =>
    withTenant(owner.db, tenantId, (tx) =>
      tx.select().from(auditLog).where(eq(auditLog.tenantId, tenantId)),
    )

  it('answers agent:info with its version, database and key id, never the key', async () => {
    const info = callData(await agent.supervisor.call('agent:info', undefined))
    expect(info).toMatchObject({
      version: expect.stringMatching(/^\d+\.\d+\.\d+/) as unknown,
      database: { kind: 'external' },
      worker: 'off',
    })
    // The database is current: it applied every migration this agent ships.
    expect(info.database.migrations.shipped).toBeGreaterThanOrEqual(12)
    expect(info.database.migrations.applied).toBe(info.database.migrations.shipped)
    expect(JSON.stringify(info)).not.toContain('a'.repeat(64))
    expect(agent.supervisor.status).toMatchObject({ state: 'ready', restarts: 0 })
  })

  it('lists the connectors with their streams and config form', async () => {
    const list = callData(await agent.supervisor.call('connectors:list', undefined))
    const salesforce = list.find((c) => c.id === 'salesforce')
    expect(salesforce).toMatchObject({ signIn: true, authMethod: 'oauth2' })
    expect(salesforce?.streams.map((s) => s.id)).toEqual([
      'accounts',
      'contacts',
      'leads',
      'opportunities',
      'tasks',
      'events',
    ])
    expect(salesforce?.secretConfigKeys).toEqual(expect.arrayContaining(['refreshToken']))
    expect(salesforce?.configSchema).toMatchObject({ type: 'object' })
  })

  it('connects, syncs with progress events in order, and reads runs, mappings and the audit log back', async () => {
    const tenantId = uniqueTenantId('rpc')
    callData(await agent.supervisor.call('tenants:create', { id: tenantId, name: 'RPC tenant' }))
    const connected = callData(
      await agent.supervisor.call('connections:connect', {
        tenantId,
        connectorType: 'salesforce',
        config: { ...fake.connectConfig(), bulkPollIntervalMs: 5 },
      }),
    )
    expect(connected).toMatchObject({ status: 'connected', created: true })
    expect(connected.health.status).toBe('healthy')

    const events: Array<{ event: AgentEventName; data: Record<string, unknown> }> = []
    const summary = callData(
      await agent.supervisor.call(
        'sync:run',
        { tenantId, connectorType: 'salesforce' },
        {
          timeoutMs: null,
          onEvent: (event, payload) =>
            events.push({ event, data: payload as Record<string, unknown> }),
        },
      ),
    )
    // 12 accounts, 30 contacts + 8 leads, 10 opportunities + 14 tasks + 6 events.
    expect(summary).toMatchObject({ status: 'succeeded', created: 80, errors: 0 })
    expect(summary.streams).toHaveLength(6)

    // Progress arrived before the answer, in order: streams in declared order, counts and time
    // never going back within a stream.
    expect(events.length).toBeGreaterThan(6)
    expect(events.every((e) => e.event === 'sync:progress')).toBe(true)
    const streamOrder = [...new Set(events.map((e) => e.data['stream']))]
    expect(streamOrder).toEqual([
      'accounts',
      'contacts',
      'leads',
      'opportunities',
      'tasks',
      'events',
    ])
    for (const stream of streamOrder) {
      const own = events.filter((e) => e.data['stream'] === stream).map((e) => e.data)
      for (let i = 1; i < own.length; i++) {
        expect(own[i]!['pages'] as number).toBeGreaterThanOrEqual(own[i - 1]!['pages'] as number)
        expect(own[i]!['created'] as number).toBeGreaterThanOrEqual(
          own[i - 1]!['created'] as number,
        )
        expect(own[i]!['elapsedMs'] as number).toBeGreaterThanOrEqual(
          own[i - 1]!['elapsedMs'] as number,
        )
      }
    }
    // Counts are the stream's own; totals the sync's so far, which only rise from report to
    // report. Streams overlap (one starts once the one before has read its last page), so the
    // contacts' last report holds its own 30 and whatever other streams had committed by then.
    const contactsLast = events.filter((e) => e.data['stream'] === 'contacts').at(-1)!.data
    expect(contactsLast).toMatchObject({ created: 30 })
    expect((contactsLast['totals'] as { created: number }).created).toBeGreaterThanOrEqual(30)
    const totals = events.map((e) => (e.data['totals'] as { created: number }).created)
    for (let i = 1; i < totals.length; i++) expect(totals[i]).toBeGreaterThanOrEqual(totals[i - 1]!)
    expect(events.at(-1)!.data).toMatchObject({ phase: 'complete', totals: { created: 80 } })

    const connections = callData(await agent.supervisor.call('connections:list', { tenantId }))
    expect(connections).toHaveLength(1)
    expect(connections[0]).toMatchObject({
      connectorType: 'salesforce',
      status: 'connected',
      records: { person: 38, account: 12, activity: 30 },
    })
    expect(connections[0]!.streams.map((s) => s.status)).toEqual(Array(6).fill('succeeded'))
    // Each stream's stored records are the ones its run created, in the order streams are read.
    const createdByStream = [...new Set(events.map((e) => e.data['stream'] as string))].map(
      (stream) => ({
        stream,
        records: events.filter((e) => e.data['stream'] === stream).at(-1)!.data['created'],
      }),
    )
    expect(createdByStream).toHaveLength(6)
    expect(connections[0]!.recordsByStream).toEqual(createdByStream)
    // The stored config comes back without its secrets.
    expect(JSON.stringify(connections[0]!.config)).not.toContain(fake.refreshToken)

    const runs = callData(
      await agent.supervisor.call('runs:list', { tenantId, connectorType: 'salesforce' }),
    )
    expect(runs).toHaveLength(6)
    expect(runs.every((r) => r.status === 'succeeded')).toBe(true)

    // What the mapping editor lists: the source's own fields, custom ones marked.
    const fields = callData(
      await agent.supervisor.call('sources:fields', {
        tenantId,
        connectorType: 'salesforce',
        stream: 'contacts',
      }),
    )
    expect(fields.map((f) => f.path)).toEqual(expect.arrayContaining(['Email', 'LastName']))
    const writeback = callData(
      await agent.supervisor.call('writeback:list', { tenantId, connectorType: 'salesforce' }),
    )
    expect(writeback.map((w) => [w.entityType, w.enabled]).sort()).toEqual([
      ['account', true],
      ['person', false],
    ])

    const audit = callData(await agent.supervisor.call('audit:list', { tenantId }))
    expect(audit.map((a) => a.action)).toEqual(
      expect.arrayContaining(['tenant.create', 'connector.create', 'sync.trigger']),
    )
    expect(new Set(audit.map((a) => a.userId))).toEqual(new Set(['app:tester']))
    expect(JSON.stringify(audit)).not.toContain(fake.refreshToken)
  })

  it('refuses a bad payload with an error that names the field, and an unknown method', async () => {
    const bad = await agent.supervisor.call('connections:connect', {
      tenantId: '',
      connectorType: 'salesforce',
      config: {},
    })
    expect(bad).toEqual({
      ok: false,
      error: {
        code: 'ipc_input_invalid',
        message: expect.stringMatching(
          /^The request to connections:connect was not valid at "tenantId": /,
        ) as unknown,
        retryable: false,
      },
    })
    const unknown = await agent.supervisor.call('agent:nothing' as 'agent:info', undefined)
    expect(unknown).toMatchObject({ ok: false, error: { code: 'ipc_input_invalid' } })
  })

  it('says what to do when a call fails in the agent, and stores nothing', async () => {
    const tenantId = uniqueTenantId('rpcbad')
    callData(await agent.supervisor.call('tenants:create', { id: tenantId, name: 'Bad key' }))
    const refused = await agent.supervisor.call('connections:connect', {
      tenantId,
      connectorType: 'salesforce',
      config: { ...fake.connectConfig(), refreshToken: 'not-the-refresh-token' },
    })
    expect(refused.ok).toBe(false)
    if (refused.ok) return
    expect(refused.error).toMatchObject({ code: 'vendor_auth_failed', retryable: false })
    expect(refused.error.message).toMatch(/Salesforce/)
    expect(refused.error.message).not.toContain('not-the-refresh-token')
    const rows = await withTenant(owner.db, tenantId, (tx) =>
      tx.select().from(connectors).where(eq(connectors.tenantId, tenantId)),
    )
    expect(rows).toEqual([])
  })

  it('writes exactly one audit row for each mutating method, as the app user', async () => {
    const tenantId = uniqueTenantId('rpcaudit')
    const target = { tenantId, connectorType: 'salesforce' }
    const mapping = {
      ...target,
      entityType: 'person' as const,
      stream: 'contacts',
      mappings: [{ sourceField: 'Title', targetField: 'title', transform: 'trim' as const }],
    }
    // Every mutation in the contract has a call here, or in the test named beside it (sign-in
    // and schedules need a browser or a Temporal): a new mutation fails here until it is audited.
    const elsewhere = {
      'signin:run': 'desktop/signin.test.ts',
      'schedules:set': 'desktop/shared-temporal.test.ts',
      'schedules:pause': 'desktop/shared-temporal.test.ts',
      'schedules:resume': 'desktop/shared-temporal.test.ts',
    }
    const calls: Record<string, () => Promise<CallResult<unknown>>> = {
      'tenants:create': () => agent.supervisor.call('tenants:create', { id: tenantId, name: 'A' }),
      'connections:connect': () =>
        agent.supervisor.call('connections:connect', {
          ...target,
          config: { ...fake.connectConfig(), bulkPollIntervalMs: 5 },
        }),
      'sync:run': () =>
        agent.supervisor.call('sync:run', { ...target, stream: 'contacts' }, { timeoutMs: null }),
      'mappings:set': () => agent.supervisor.call('mappings:set', mapping),
      // Audited even when nothing is quarantined: the admin asked for it.
      'quarantine:retry': () => agent.supervisor.call('quarantine:retry', target),
      'mappings:reset': () =>
        agent.supervisor.call('mappings:reset', {
          ...target,
          entityType: 'person',
          stream: 'contacts',
        }),
      'agreements:accept': () =>
        agent.supervisor.call('agreements:accept', { tenantId, connectorType: 'o365' }),
      'writeback:set': () =>
        agent.supervisor.call('writeback:set', { ...target, entityType: 'person', enabled: true }),
      'connections:disconnect': () => agent.supervisor.call('connections:disconnect', target),
    }
    const mutations = Object.entries(agentRpc)
      .filter(([, spec]) => spec.kind === 'mutation')
      .map(([name]) => name)
    expect(mutations.filter((m) => !(m in calls)).sort()).toEqual(Object.keys(elsewhere).sort())

    for (const [method, call] of Object.entries(calls)) {
      const before = (await auditRows(tenantId).catch(() => [])).length
      const result = await call()
      expect(result.ok, `${method}: ${JSON.stringify(result)}`).toBe(true)
      const after = await auditRows(tenantId)
      expect(after.length - before, method).toBe(1)
      expect(after.every((row) => row.userId === 'app:tester')).toBe(true)
    }
    // Queries write nothing.
    const count = (await auditRows(tenantId)).length
    for (const call of [
      () => agent.supervisor.call('connections:list', { tenantId }),
      () => agent.supervisor.call('runs:list', target),
      () => agent.supervisor.call('audit:list', { tenantId }),
      () => agent.supervisor.call('quarantine:list', target),
      () => agent.supervisor.call('writeback:list', target),
    ]) {
      expect((await call()).ok).toBe(true)
    }
    expect(await auditRows(tenantId)).toHaveLength(count)
    const actions = await withTenant(owner.db, tenantId, (tx) =>
      tx
        .select({ action: auditLog.action })
        .from(auditLog)
        .where(and(eq(auditLog.tenantId, tenantId), eq(auditLog.action, 'mapping.update'))),
    )
    expect(actions).toHaveLength(1)
  })
})
