import { randomBytes } from 'node:crypto'
import { asc, sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { auditLog, writebackQueue } from '../../../db/schema/index.js'
import { withTenant } from '../../../db/tenant.js'
import { checkCron, nextCronRuns } from '../../../shared/cron.js'
import type { CallResult } from '../../../shared/contract.js'
import '../../../src-agent/connectors/index.js'
import { connectorRegistry } from '../../../src-agent/connectors/registry.js'
import { queueWriteback } from '../../../src-agent/pipeline/writeback/queue.js'
import { startDevServer, type StartedDevServer } from '../../../src-agent/temporal/dev-server.js'
import { startCustomerioFake, type CustomerioFake } from '../../fakes/customerio.js'
import { startSalesforceFake, type SalesforceFake } from '../../fakes/salesforce.js'
import { TEST_KEY_HEX, memoryLogger } from '../../helpers/agent.js'
import { agentDb, databaseUrl, ownerDb, uniqueTenantId } from '../../helpers/db.js'
import { callData, startAgentProcess, type AgentUnderTest } from '../../helpers/desktop.js'
import { freePort } from '../../helpers/ports.js'
import { startTcpProxy } from '../../helpers/tcp-proxy.js'
import { testTemporalCli } from '../../helpers/temporal.js'

/**
 * The read-only views behind the Diagnostics, Timeline, Audit and Writeback screens, asked of
 * the real agent process over RPC, with Postgres, a Temporal dev server and the vendor fakes.
 */
describe('the screens’ views, over the agent’s RPC', () => {
  let temporal: StartedDevServer
  let salesforce: SalesforceFake
  let customerio: CustomerioFake
  let agent: AgentUnderTest
  const owner = ownerDb()
  const db = agentDb()

  beforeAll(async () => {
    temporal = await startDevServer({ cliPath: testTemporalCli(), log: memoryLogger('warn').log })
    salesforce = await startSalesforceFake()
    customerio = await startCustomerioFake()
    agent = await startAgentProcess({ env: { TEMPORAL_ADDRESS: temporal.address } })
  }, 120_000)
  afterAll(async () => {
    await agent?.close()
    await salesforce?.close()
    await customerio?.close()
    await temporal?.stop()
    await owner.close()
    await db.close()
  })

  const call = <T>(result: Promise<CallResult<T>>): Promise<T> => result.then(callData)
  const newTenant = async (prefix: string): Promise<string> => {
    const tenantId = uniqueTenantId(prefix)
    await call(agent.supervisor.call('tenants:create', { id: tenantId, name: prefix }))
    return tenantId
  }
  const connectSalesforce = (tenantId: string, fake = salesforce) =>
    call(
      agent.supervisor.call('connections:connect', {
        tenantId,
        connectorType: 'salesforce',
        config: { ...fake.connectConfig(), bulkPollIntervalMs: 5 },
      }),
    )
  const syncSalesforce = (tenantId: string) =>
    agent.supervisor.call(
      'sync:run',
      { tenantId, connectorType: 'salesforce' },
      { timeoutMs: null },
    )

  describe('diagnostics', () => {
    it('is all green on a healthy setup, with the Salesforce API quota and no secret', async () => {
      const tenantId = await newTenant('diag')
      await connectSalesforce(tenantId)
      salesforce.setApiUsage(1234, 15_000)
      const diagnostics = await call(agent.supervisor.call('diagnostics:run', { tenantId }))

      expect(diagnostics.database).toMatchObject({
        reachable: true,
        tablesWithoutRls: [],
        error: null,
      })
      expect(diagnostics.database.latencyMs).toBeGreaterThan(0)
      expect(diagnostics.database.migrations!.applied).toBe(
        diagnostics.database.migrations!.shipped,
      )
      expect(diagnostics.database.migrations!.shipped).toBeGreaterThanOrEqual(17)
      // The connect told Temporal: the connection has its schedule there.
      expect(diagnostics.temporal).toMatchObject({
        reachable: true,
        address: temporal.address,
        namespace: 'default',
        worker: 'off',
        workerError: null,
        schedules: 1,
        error: null,
      })
      expect(diagnostics.temporal.latencyMs).toBeGreaterThan(0)
      expect(diagnostics.encryptionKey).toEqual({
        present: true,
        keyId: expect.stringMatching(/\S/) as unknown,
      })
      expect(diagnostics.connections).toEqual([
        {
          connectorType: 'salesforce',
          status: 'connected',
          health: expect.objectContaining({ status: 'healthy' }) as unknown,
          // The health check's own /limits read counts too.
          quota: { used: salesforce.apiUsage().used, limit: 15_000 },
          tokenExpiresAt: null,
          credential: 'Refresh token: access renewed as needed, valid until revoked',
          error: null,
        },
      ])
      expect(diagnostics.recentErrors).toEqual([])
      const text = JSON.stringify(diagnostics)
      for (const secret of [salesforce.refreshToken, ...salesforce.issuedTokens(), TEST_KEY_HEX]) {
        expect(text).not.toContain(secret)
      }
    })

    it('names a tenant table whose row-level security is not forced', async () => {
      const tenantId = await newTenant('diagrls')
      const schema = `diag_${randomBytes(4).toString('hex')}`
      await owner.pool.query(`create schema ${schema}`)
      try {
        await owner.pool.query(`create table ${schema}.leaky (tenant_id text not null)`)
        await owner.pool.query(`create table ${schema}.half (tenant_id text not null)`)
        // Enabled but not forced: the owner would still see every tenant's rows.
        await owner.pool.query(`alter table ${schema}.half enable row level security`)
        const diagnostics = await call(agent.supervisor.call('diagnostics:run', { tenantId }))
        expect(diagnostics.database.tablesWithoutRls).toEqual([`${schema}.half`, `${schema}.leaky`])
      } finally {
        await owner.pool.query(`drop schema ${schema} cascade`)
      }
    })

    it('answers in seconds while the database is down, says why, and recovers', async () => {
      const database = new URL(databaseUrl())
      const proxy = await startTcpProxy({
        host: database.hostname,
        port: Number(database.port || 5432),
      })
      const cut = await startAgentProcess({
        env: { DATABASE_URL: proxy.through(databaseUrl()), TEMPORAL_ADDRESS: temporal.address },
      })
      try {
        const tenantId = uniqueTenantId('diagdown')
        await call(cut.supervisor.call('tenants:create', { id: tenantId, name: 'Down' }))
        const timed = async () => {
          const started = Date.now()
          const result = await call(cut.supervisor.call('diagnostics:run', { tenantId }))
          return { result, ms: Date.now() - started }
        }
        expect((await timed()).result.database.reachable).toBe(true)

        await proxy.refuse()
        const refused = await timed()
        expect(refused.ms).toBeLessThan(6_000)
        expect(refused.result.database).toEqual({
          reachable: false,
          latencyMs: null,
          migrations: null,
          tablesWithoutRls: [],
          error: `Postgres at 127.0.0.1:${proxy.port} refused the connection: is the server running?`,
        })
        // What does not need the database is still there.
        expect(refused.result.temporal).toMatchObject({ reachable: true, schedules: 0 })
        expect(refused.result.encryptionKey.present).toBe(true)
        expect(refused.result.connections).toEqual([])

        // A server that accepts and never answers: the deadline, not a hang.
        await proxy.restore()
        proxy.stall()
        const stalled = await timed()
        expect(stalled.ms).toBeLessThan(6_000)
        expect(stalled.result.database).toMatchObject({
          reachable: false,
          error: `Postgres at 127.0.0.1:${proxy.port} did not answer within 2.5 s.`,
        })

        await proxy.restore()
        const back = await timed()
        expect(back.result.database).toMatchObject({ reachable: true, error: null })
        expect(JSON.stringify(back.result)).not.toContain(TEST_KEY_HEX)
      } finally {
        await cut.close()
        await proxy.close()
      }
    })

    it('answers in seconds while Temporal is down, with the rest filled', async () => {
      const closed = await freePort()
      const noTemporal = await startAgentProcess({
        env: { TEMPORAL_ADDRESS: `127.0.0.1:${closed}` },
      })
      try {
        const tenantId = uniqueTenantId('diagnotemporal')
        await call(noTemporal.supervisor.call('tenants:create', { id: tenantId, name: 'No T' }))
        const started = Date.now()
        const diagnostics = await call(noTemporal.supervisor.call('diagnostics:run', { tenantId }))
        expect(Date.now() - started).toBeLessThan(6_000)
        expect(diagnostics.temporal).toMatchObject({
          reachable: false,
          address: `127.0.0.1:${closed}`,
          latencyMs: null,
          schedules: null,
          worker: 'off',
        })
        expect(diagnostics.temporal.error).toMatch(
          new RegExp(`^Temporal at 127\\.0\\.0\\.1:${closed} (is not reachable|did not answer)`),
        )
        expect(diagnostics.database).toMatchObject({ reachable: true, error: null })
      } finally {
        await noTemporal.close()
      }
    })

    it('says a connection needs re-auth after Salesforce revoked its refresh token', async () => {
      // A fake of its own: revoking its tokens must not touch the other tests' connections.
      const revoking = await startSalesforceFake()
      try {
        const tenantId = await newTenant('reauth')
        const healthyTenant = await newTenant('reauthok')
        await connectSalesforce(tenantId, revoking)
        await connectSalesforce(healthyTenant)
        const before = await call(agent.supervisor.call('connections:list', { tenantId }))
        expect(before[0]).toMatchObject({ status: 'connected', needsReauth: false })

        revoking.revokeRefreshTokens()
        revoking.expireAccessTokens()
        const failed = await call(syncSalesforce(tenantId))
        expect(failed).toMatchObject({ status: 'failed' })

        const after = await call(agent.supervisor.call('connections:list', { tenantId }))
        expect(after[0]).toMatchObject({ status: 'error', needsReauth: true })
        const healthy = await call(
          agent.supervisor.call('connections:list', { tenantId: healthyTenant }),
        )
        expect(healthy[0]).toMatchObject({ needsReauth: false })

        const diagnostics = await call(agent.supervisor.call('diagnostics:run', { tenantId }))
        expect(diagnostics.recentErrors).toEqual([
          {
            kind: 'configuration',
            code: 'vendor_auth_failed',
            connectorType: 'salesforce',
            count: 1,
            lastAt: expect.any(String) as unknown,
            message: expect.stringMatching(/Salesforce/) as unknown,
            nextStep: expect.stringMatching(
              /^Reconnect Salesforce: the refresh token was revoked/,
            ) as unknown,
          },
        ])
        expect(diagnostics.connections[0]).toMatchObject({
          connectorType: 'salesforce',
          status: 'error',
          health: expect.objectContaining({ status: 'down' }) as unknown,
        })
        expect(JSON.stringify(diagnostics)).not.toContain(revoking.refreshToken)
      } finally {
        await revoking.close()
      }
    })
  })

  describe('timeline and audit', () => {
    let tenantId: string
    let connectedAt: string

    beforeAll(async () => {
      tenantId = await newTenant('timeline')
      await connectSalesforce(tenantId)
      // Another connector of the same tenant, changed too: none of it is Salesforce's timeline.
      await call(
        agent.supervisor.call('connections:connect', {
          tenantId,
          connectorType: 'customerio',
          config: { appApiKey: customerio.appApiKey, baseUrl: customerio.url },
        }),
      )
      const cioMappings = await call(
        agent.supervisor.call('mappings:get', {
          tenantId,
          connectorType: 'customerio',
          entityType: 'person',
        }),
      )
      await call(
        agent.supervisor.call('mappings:set', {
          tenantId,
          connectorType: 'customerio',
          entityType: 'person',
          mappings: cioMappings.effective,
        }),
      )
      connectedAt = new Date().toISOString()
      const contacts = await call(
        agent.supervisor.call('mappings:get', {
          tenantId,
          connectorType: 'salesforce',
          entityType: 'person',
          stream: 'contacts',
        }),
      )
      await call(
        agent.supervisor.call('mappings:set', {
          tenantId,
          connectorType: 'salesforce',
          entityType: 'person',
          stream: 'contacts',
          mappings: contacts.effective,
        }),
      )
      expect(await call(syncSalesforce(tenantId))).toMatchObject({ status: 'succeeded' })
      // A second sync with one account changed and one deleted.
      salesforce.update('Account', salesforce.idOf('Account', 1), { Name: 'Renamed' })
      salesforce.remove('Account', salesforce.idOf('Account', 2))
      expect(await call(syncSalesforce(tenantId))).toMatchObject({ status: 'succeeded' })
    }, 60_000)

    const timeline = (input: Record<string, unknown> = {}) =>
      call(
        agent.supervisor.call('timeline:list', {
          tenantId,
          connectorType: 'salesforce',
          ...input,
        }),
      )

    it('shows the connect, the mapping change and the sync runs, newest first', async () => {
      const entries = await timeline()
      const times = entries.map((e) => e.at)
      expect(times).toEqual([...times].sort().reverse())
      expect(entries.filter((e) => e.type === 'config').map((e) => e.title)).toEqual([
        'Connected Salesforce',
      ])
      expect(entries.filter((e) => e.type === 'mapping').map((e) => e.title)).toEqual([
        'Mapping of Contacts changed',
      ])
      // The connect made the connection's schedule in Temporal.
      expect(entries.filter((e) => e.type === 'schedule').map((e) => e.title)).toEqual([
        'Schedule created: */15 * * * *',
      ])
      const runs = entries.filter((e) => e.type === 'run')
      expect(runs).toHaveLength(12)
      expect(new Set(runs.map((r) => r.title))).toEqual(new Set(['Sync succeeded']))
      const [second, first] = runs.filter((r) => r.run?.stream === 'accounts')
      expect(first).toMatchObject({
        userId: 'app:tester',
        run: { status: 'succeeded', mode: 'incremental', records: 12, error: null },
      })
      // Records are what the run wrote: created, updated and deleted.
      expect(second).toMatchObject({ run: { records: 2 } })
      expect(first!.run!.durationMs).toBeGreaterThanOrEqual(0)
      expect(entries.every((e) => e.type === 'run' || e.userId === 'app:tester')).toBe(true)

      // Customer.io's own rows exist, and none of them is in Salesforce's timeline.
      const cioRows = await withTenant(owner.db, tenantId, (tx) =>
        tx
          .select({ id: auditLog.id })
          .from(auditLog)
          .where(sql`${auditLog.metadata}->>'connectorType' = 'customerio'`),
      )
      expect(cioRows.length).toBeGreaterThanOrEqual(2)
      const shown = new Set(entries.map((e) => e.id))
      expect(cioRows.filter((row) => shown.has(`audit:${row.id}`))).toEqual([])
    })

    it('filters by type, time and count', async () => {
      const mappingsOnly = await timeline({ types: ['mapping'] })
      expect(mappingsOnly.map((e) => [e.type, e.title])).toEqual([
        ['mapping', 'Mapping of Contacts changed'],
      ])
      const notRuns = await timeline({ types: ['config', 'schedule'] })
      expect(new Set(notRuns.map((e) => e.type))).toEqual(new Set(['config', 'schedule']))

      const sinceConnect = await timeline({ from: connectedAt })
      expect(sinceConnect.some((e) => e.type === 'config')).toBe(false)
      expect(sinceConnect.some((e) => e.type === 'mapping')).toBe(true)
      const beforeConnect = await timeline({ to: connectedAt })
      expect(beforeConnect.some((e) => e.type === 'run' || e.type === 'mapping')).toBe(false)
      expect(beforeConnect.some((e) => e.type === 'config')).toBe(true)

      const all = await timeline()
      expect(await timeline({ limit: 2 })).toEqual(all.slice(0, 2))
    })

    it('filters the audit log by action, resource, user and time, all together', async () => {
      const audit = (input: Record<string, unknown>) =>
        call(agent.supervisor.call('audit:list', { tenantId, ...input }))
      const all = await audit({})
      expect(all.map((a) => a.action)).toEqual(
        expect.arrayContaining([
          'tenant.create',
          'connector.create',
          'mapping.update',
          'sync.trigger',
        ]),
      )
      const mappings = await audit({ action: 'mapping.update' })
      expect(mappings).toHaveLength(2)
      expect(mappings.every((a) => a.action === 'mapping.update')).toBe(true)

      const connectorRows = await audit({ resource: 'connector' })
      expect(connectorRows.length).toBeGreaterThan(0)
      expect(connectorRows.every((a) => a.resource === 'connector')).toBe(true)

      // A row written by somebody else (of Customer.io, so Salesforce's timeline stays as it
      // is whatever order the tests run in): only the user filter tells the two apart.
      await withTenant(owner.db, tenantId, (tx) =>
        tx.insert(auditLog).values({
          tenantId,
          userId: 'cli:operator',
          action: 'mapping.update',
          resource: 'field_mapping',
          metadata: { connectorType: 'customerio', entityType: 'account' },
        }),
      )
      expect(await audit({ action: 'mapping.update' })).toHaveLength(3)
      const byOperator = await audit({ userId: 'cli:operator' })
      expect(byOperator.map((a) => a.action)).toEqual(['mapping.update'])
      expect(await audit({ userId: 'cli:operator', action: 'connector.create' })).toEqual([])

      const since = await audit({
        from: connectedAt,
        action: 'mapping.update',
        userId: 'app:tester',
      })
      expect(since).toHaveLength(1)
      const until = await audit({ to: connectedAt })
      expect(until.map((a) => a.action)).toEqual(
        expect.arrayContaining(['tenant.create', 'connector.create']),
      )
      expect(until.every((a) => a.createdAt <= connectedAt)).toBe(true)
      expect(await audit({ from: connectedAt, to: connectedAt, action: 'tenant.create' })).toEqual(
        [],
      )
    })
  })

  describe('writeback preview', () => {
    it('shows current against new values for the first items, and writes nothing', async () => {
      const tenantId = await newTenant('wbprev')
      await connectSalesforce(tenantId)
      const items = [0, 1, 2, 3].map((i) => ({
        entityType: 'account',
        externalId: salesforce.idOf('Account', i),
        fields: { combinedScore: 60 + i, tier: 'warm' },
      }))
      await queueWriteback(
        { handle: db, registry: connectorRegistry, userId: 'test:runner' },
        { tenantId, connectorType: 'salesforce', items },
      )
      salesforce.update('Account', salesforce.idOf('Account', 0), { GTM_Score__c: 12 })
      const patchesBefore = salesforce.requests.filter((r) => r.method === 'PATCH').length

      const preview = await call(
        agent.supervisor.call('writeback:preview', {
          tenantId,
          connectorType: 'salesforce',
          limit: 2,
        }),
      )
      expect(preview.queued).toBe(4)
      expect(preview.items).toHaveLength(2)
      expect(preview.items[0]).toEqual({
        entityType: 'account',
        externalId: salesforce.idOf('Account', 0),
        objectType: 'Account',
        found: true,
        changes: [
          { field: 'GTM_Score__c', from: 12, to: 60 },
          { field: 'GTM_Tier__c', from: null, to: 'warm' },
        ],
        error: null,
      })

      // Nothing was written, in Salesforce or in the queue.
      expect(salesforce.requests.filter((r) => r.method === 'PATCH')).toHaveLength(patchesBefore)
      expect(salesforce.record('Account', salesforce.idOf('Account', 1))).toMatchObject({
        GTM_Score__c: null,
      })
      const queue = await withTenant(db.db, tenantId, (tx) =>
        tx.select().from(writebackQueue).orderBy(asc(writebackQueue.seq)),
      )
      expect(queue.map((r) => [r.status, r.attempts])).toEqual(Array(4).fill(['pending', 0]))
    })

    it('says so for a connector that cannot write back', async () => {
      const tenantId = await newTenant('wbnone')
      const result = await agent.supervisor.call('writeback:preview', {
        tenantId,
        connectorType: 'customerio',
      })
      expect(result).toEqual({
        ok: false,
        error: {
          code: 'config_invalid',
          message: 'Customer.io cannot write updates back to its source.',
          retryable: false,
        },
      })
    })
  })

  describe('schedules', () => {
    it('shows the runs Temporal will start, day-of-month AND day-of-week included', async () => {
      const tenantId = await newTenant('cron')
      await connectSalesforce(tenantId)
      for (const cron of ['0 0 13 * FRI', '30 2 * * *', '0 0 31 * *', '@every 30m']) {
        expect(checkCron(cron)).toEqual({ ok: true })
        const view = await call(
          agent.supervisor.call('schedules:set', { tenantId, connectorType: 'salesforce', cron }),
        )
        const [expected] = nextCronRuns(cron, new Date(), 1)
        expect({ cron, next: view.nextRunAt }).toEqual({ cron, next: expected!.toISOString() })
      }
      const refused = await agent.supervisor.call('schedules:set', {
        tenantId,
        connectorType: 'salesforce',
        cron: '0 24 * * *',
      })
      expect(refused).toMatchObject({
        ok: false,
        error: {
          code: 'config_invalid',
          message: expect.stringContaining('hour: 24 is out of range 0–23') as unknown,
        },
      })
    })
  })
})
