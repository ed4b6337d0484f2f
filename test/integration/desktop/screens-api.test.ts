/**
 * What the Connect, Mappings and Rejected-records screens ask of the agent, through the agent
 * process as the app spawns it: setup checks before anything is saved, the live mapping preview,
 * retrying rejected records, and a sync's expected size in its progress events. Real Postgres,
 * loopback fake vendors.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { and, eq } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { auditLog, connectors, people, quarantine } from '../../../db/schema/index.js'
import { withTenant } from '../../../db/tenant.js'
import type { CallResult } from '../../../shared/contract.js'
import type { AgentEventName } from '../../../shared/rpc.js'
import { startCustomerioFake, type CustomerioFake } from '../../fakes/customerio.js'
import { startDelivrFake, type DelivrFake } from '../../fakes/delivr.js'
import { startMicrosoftFake, type MicrosoftFake } from '../../fakes/microsoft.js'
import { startSalesforceFake, type SalesforceFake } from '../../fakes/salesforce.js'
import { ownerDb, uniqueTenantId } from '../../helpers/db.js'
import { callData, startAgentProcess, type AgentUnderTest } from '../../helpers/desktop.js'
import { testCertificate } from '../../helpers/tls.js'

/** Contact 4 has an address that is no email; contact 7 has no title. */
const BAD_EMAIL = 4
const NO_TITLE = 7

describe('the screens’ agent methods: setup checks, mapping preview, retrying rejects', () => {
  let agent: AgentUnderTest
  let salesforce: SalesforceFake
  let delivr: DelivrFake
  let customerio: CustomerioFake
  let microsoft: MicrosoftFake
  const owner = ownerDb()

  beforeAll(async () => {
    salesforce = await startSalesforceFake({
      overrides: {
        Contact: { [BAD_EMAIL]: { Email: 'not-an-email' }, [NO_TITLE]: { Title: null } },
      },
    })
    delivr = await startDelivrFake()
    customerio = await startCustomerioFake()
    microsoft = await startMicrosoftFake()
    microsoft.grantConsent()
    // The Microsoft fake is https (MSAL refuses an http authority), signed by the test CA.
    agent = await startAgentProcess({ env: { NODE_EXTRA_CA_CERTS: testCertificate().caFile } })
  })
  afterAll(async () => {
    await agent?.close()
    await Promise.all([
      salesforce?.close(),
      delivr?.close(),
      customerio?.close(),
      microsoft?.close(),
    ])
    await owner.close()
  })

  /** A call with no timeout; `events` collects the events the agent pushes for it. */
  function call<T>(
    method: Parameters<AgentUnderTest['supervisor']['call']>[0],
    input: unknown,
    events?: Array<{ event: AgentEventName; data: Record<string, unknown> }>,
  ): Promise<CallResult<T>> {
    return agent.supervisor.call(method, input as never, {
      timeoutMs: null,
      ...(events
        ? {
            onEvent: (event: AgentEventName, data: unknown) =>
              events.push({ event, data: data as Record<string, unknown> }),
          }
        : {}),
    }) as Promise<CallResult<T>>
  }
  const newTenant = async (prefix: string): Promise<string> => {
    const tenantId = uniqueTenantId(prefix)
    callData(await call('tenants:create', { id: tenantId, name: prefix }))
    return tenantId
  }
  const auditRows = (tenantId: string) =>
    withTenant(owner.db, tenantId, (tx) =>
      tx.select().from(auditLog).where(eq(auditLog.tenantId, tenantId)),
    )
  const connectionRows = (tenantId: string) =>
    withTenant(owner.db, tenantId, (tx) =>
      tx.select().from(connectors).where(eq(connectors.tenantId, tenantId)),
    )

  type Report = {
    ok: boolean
    checks: Array<{
      id: string
      label: string
      status: string
      message: string
      hint: string | null
      latencyMs: number | null
    }>
  }
  const check = async (tenantId: string, connectorType: string, config: unknown) => {
    const events: Array<{ event: AgentEventName; data: Record<string, unknown> }> = []
    const report = callData(
      await call<Report>('connections:check', { tenantId, connectorType, config }, events),
    )
    return { report, events }
  }
  const statuses = (report: Report) =>
    Object.fromEntries(report.checks.map((c) => [c.id, c.status]))

  it('checks a Delivr.ai key that the source refuses: auth fails, the rest is skipped, nothing is stored and the key is nowhere', async () => {
    const tenantId = await newTenant('chk')
    const wrongKey = 'dlvr_live_wrong_key_6f1c2a9e'
    const auditBefore = (await auditRows(tenantId)).length

    const { report, events } = await check(tenantId, 'delivrai', {
      apiKey: wrongKey,
      baseUrl: delivr.url,
    })
    expect(report.ok).toBe(false)
    expect(report.checks.map((c) => c.id)).toEqual([
      'settings',
      'auth',
      'reachable',
      'permissions',
      'webhook_key',
    ])
    expect(statuses(report)).toEqual({
      settings: 'passed',
      auth: 'failed',
      reachable: 'skipped',
      permissions: 'skipped',
      webhook_key: 'skipped',
    })
    const auth = report.checks[1]!
    expect(auth).toMatchObject({
      label: 'Key accepted',
      message: 'Delivr.ai refused the API key.',
      hint: expect.stringMatching(/API key/) as unknown,
    })
    expect(auth.latencyMs).toBeGreaterThanOrEqual(0)
    expect(report.checks[2]!.message).toMatch(/"Key accepted" did not pass/)

    // One event per check, in order, each the check as returned.
    expect(events.map((e) => e.event)).toEqual(Array(5).fill('connect:check'))
    expect(events.map((e) => e.data)).toEqual(
      report.checks.map((c, index) => ({
        tenantId,
        connectorType: 'delivrai',
        index,
        total: 5,
        check: c,
      })),
    )
    // Nothing stored, nothing audited, the key in no answer, event or log line.
    expect(await connectionRows(tenantId)).toEqual([])
    expect(await auditRows(tenantId)).toHaveLength(auditBefore)
    expect(JSON.stringify({ report, events })).not.toContain(wrongKey)
    expect(agent.stderr.join('\n')).not.toContain(wrongKey)
  })

  it('passes every check of a Delivr.ai key the source accepts', async () => {
    const tenantId = await newTenant('chk')
    const { report, events } = await check(tenantId, 'delivrai', {
      apiKey: delivr.apiKey,
      baseUrl: delivr.url,
    })
    expect(statuses(report)).toEqual({
      settings: 'passed',
      auth: 'passed',
      reachable: 'passed',
      permissions: 'passed',
      // Delivr.ai pushes nothing: there is no key to look for.
      webhook_key: 'skipped',
    })
    expect(report.ok).toBe(true)
    expect(report.checks.find((c) => c.id === 'reachable')?.latencyMs).toBeGreaterThanOrEqual(0)
    expect(report.checks.every((c) => c.status !== 'passed' || c.hint === null)).toBe(true)
    expect(events).toHaveLength(5)
    expect(JSON.stringify(report)).not.toContain(delivr.apiKey)
    expect(await connectionRows(tenantId)).toEqual([])
  })

  it('names a missing setting, and a source that cannot be reached', async () => {
    const tenantId = await newTenant('chk')
    const missing = await check(tenantId, 'delivrai', { baseUrl: delivr.url })
    expect(statuses(missing.report)).toMatchObject({ settings: 'failed', auth: 'skipped' })
    expect(missing.report.checks[0]!.message).toMatch(/"apiKey" is required/)

    // A port nobody listens on: connection refused.
    const closed = http.createServer()
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
    const port = (closed.address() as AddressInfo).port
    await new Promise<void>((resolve) => closed.close(() => resolve()))
    const down = await check(tenantId, 'delivrai', {
      apiKey: delivr.apiKey,
      baseUrl: `http://127.0.0.1:${port}`,
    })
    const auth = down.report.checks.find((c) => c.id === 'auth')!
    expect(auth.status).toBe('failed')
    expect(auth.message).toMatch(/Delivr\.ai/)
    expect(auth.hint).toMatch(/network connection and proxy/)
    expect(statuses(down.report)).toMatchObject({ reachable: 'skipped' })
  })

  it('fails the webhook key check of a Customer.io config without its signing key', async () => {
    const tenantId = await newTenant('chk')
    const base = { appApiKey: customerio.appApiKey, baseUrl: customerio.url }
    const without = await check(tenantId, 'customerio', base)
    expect(statuses(without.report)).toEqual({
      settings: 'passed',
      auth: 'passed',
      reachable: 'passed',
      permissions: 'passed',
      webhook_key: 'failed',
    })
    expect(without.report.ok).toBe(false)
    expect(without.report.checks[4]!.hint).toMatch(/"webhookSigningKey"/)

    const withKey = await check(tenantId, 'customerio', {
      ...base,
      webhookSigningKey: customerio.signingKey,
    })
    expect(statuses(withKey.report)).toMatchObject({ webhook_key: 'passed' })
    expect(withKey.report.ok).toBe(true)
    expect(JSON.stringify(withKey)).not.toContain(customerio.signingKey)
    expect(JSON.stringify(withKey)).not.toContain(customerio.appApiKey)
  })

  it('checks that the tenant accepted Microsoft 365’s data-processing terms', async () => {
    const tenantId = await newTenant('chk')
    const config = {
      tenantId: microsoft.tenantId,
      clientId: microsoft.clientId,
      clientSecret: microsoft.clientSecret,
      authority: microsoft.url,
      graphBaseUrl: `${microsoft.url}/v1.0`,
    }
    const before = await check(tenantId, 'o365', config)
    expect(statuses(before.report)).toEqual({
      settings: 'passed',
      auth: 'passed',
      reachable: 'passed',
      permissions: 'passed',
      webhook_key: 'skipped',
      agreement: 'failed',
    })
    const agreement = before.report.checks.at(-1)!
    expect(agreement).toMatchObject({ label: 'Data-processing terms accepted' })
    expect(agreement.hint).toMatch(/accept the Microsoft 365 data-processing terms/i)
    expect(before.events.at(-1)!.data).toMatchObject({ index: 5, total: 6 })

    callData(await call('agreements:accept', { tenantId, connectorType: 'o365' }))
    const after = await check(tenantId, 'o365', config)
    expect(statuses(after.report)).toMatchObject({ agreement: 'passed' })
    expect(after.report.ok).toBe(true)
    expect(JSON.stringify(after)).not.toContain(microsoft.clientSecret)
  })

  /** A tenant with Salesforce connected and its contacts synced; the sync's progress events. */
  const syncedSalesforce = async (prefix: string, before?: (tenantId: string) => Promise<void>) => {
    const tenantId = await newTenant(prefix)
    callData(
      await call('connections:connect', {
        tenantId,
        connectorType: 'salesforce',
        config: { ...salesforce.connectConfig(), bulkPollIntervalMs: 5 },
      }),
    )
    await before?.(tenantId)
    const events: Array<{ event: AgentEventName; data: Record<string, unknown> }> = []
    const summary = callData(
      await call<{ status: string; created: number; errors: number }>(
        'sync:run',
        { tenantId, connectorType: 'salesforce', stream: 'contacts' },
        events,
      ),
    )
    expect(summary.status).toBe('succeeded')
    return { tenantId, summary, events }
  }

  type Preview = {
    fetchedAt: string
    mappingError: string | null
    rows: Array<{
      externalId: string | null
      raw: Record<string, unknown>
      canonical: Record<string, unknown> | null
      deleted: boolean
      rejects: Array<{ field: string; reason: string }>
    }>
    accepted: number
    rejected: number
    durationMs: number
  }

  it('previews draft mappings over samples from the source, rejects and mapping errors included, and writes nothing', async () => {
    const { tenantId, events } = await syncedSalesforce('prev')
    // The sync said how many contacts there are, before and while it read them.
    const contactEvents = events.filter(
      (e) => e.event === 'sync:progress' && e.data['stream'] === 'contacts',
    )
    expect(contactEvents.at(-1)!.data['expected']).toBe(30)

    const target = {
      tenantId,
      connectorType: 'salesforce',
      entityType: 'person',
      stream: 'contacts',
    }
    const { effective } = callData(
      await call<{ effective: Array<Record<string, unknown>> }>('mappings:get', target),
    )
    const runsBefore = callData(
      await call<unknown[]>('runs:list', { tenantId, connectorType: 'salesforce' }),
    )
    const auditBefore = (await auditRows(tenantId)).length

    const draft = effective.map((m) =>
      m['targetField'] === 'lastName' ? { ...m, transform: 'uppercase' } : m,
    )
    const preview = callData(
      await call<Preview>('mappings:preview', { ...target, mappings: draft, limit: 10 }),
    )
    expect(preview.mappingError).toBeNull()
    expect(preview.rows).toHaveLength(10)
    // Source order: the fake serves contacts by modstamp, i.e. by index.
    expect(preview.rows.map((r) => r.externalId)).toEqual(
      Array.from({ length: 10 }, (_, i) => salesforce.idOf('Contact', i)),
    )
    expect(preview.rows[0]!.canonical).toMatchObject({
      externalId: salesforce.idOf('Contact', 0),
      lastName: 'LAST0',
      firstName: 'First0',
      // The quality rules ran: addresses are lower-cased.
      email: 'contact0@example.com',
    })
    expect(preview.rows[0]!.raw).toMatchObject({ LastName: 'Last0', Email: 'Contact0@Example.com' })
    const bad = preview.rows[BAD_EMAIL]!
    expect(bad.canonical).toBeNull()
    expect(bad.rejects).toEqual([
      { field: 'email', reason: expect.stringMatching(/email/) as unknown },
    ])
    expect(preview).toMatchObject({ accepted: 9, rejected: 1 })

    // The samples are kept: a second draft reads no new page.
    const queries = salesforce.requests.filter((r) => r.path.includes('/query')).length
    const again = callData(
      await call<Preview>('mappings:preview', { ...target, mappings: effective, limit: 10 }),
    )
    expect(again.fetchedAt).toBe(preview.fetchedAt)
    expect(again.rows[0]!.canonical).toMatchObject({ lastName: 'Last0' })
    expect(salesforce.requests.filter((r) => r.path.includes('/query')).length).toBe(queries)
    const fresh = callData(
      await call<Preview>('mappings:preview', {
        ...target,
        mappings: effective,
        limit: 10,
        refresh: true,
      }),
    )
    expect(fresh.fetchedAt > preview.fetchedAt).toBe(true)

    // A draft that leaves a required field unmapped is an answer, not a failure.
    const broken = callData(
      await call<Preview>('mappings:preview', {
        ...target,
        mappings: effective.filter((m) => m['targetField'] !== 'externalId'),
      }),
    )
    expect(broken.mappingError).toMatch(/required field "externalId" is not mapped/)
    expect(broken.rows).toEqual([])

    // Nothing was written: no run, no audit row, the same stored records.
    expect(
      callData(await call<unknown[]>('runs:list', { tenantId, connectorType: 'salesforce' })),
    ).toHaveLength(runsBefore.length)
    expect(await auditRows(tenantId)).toHaveLength(auditBefore)
  })

  it('retries rejected records after the mapping is fixed: the fixed one is stored, the other keeps its new reason', async () => {
    const target = { connectorType: 'salesforce', entityType: 'person', stream: 'contacts' }
    const title = { sourceField: 'Title', targetField: 'title', transform: 'trim' }
    // A title is required: the contact without one is rejected, as is the one with a bad email.
    const { tenantId, summary } = await syncedSalesforce('retry', async (id) => {
      callData(
        await call('mappings:set', {
          ...target,
          tenantId: id,
          mappings: [{ ...title, required: true }],
        }),
      )
    })
    expect(summary).toMatchObject({ created: 28, errors: 2 })
    const rejected = callData(
      await call<
        Array<{ id: string; runId: string | null; externalId: string | null; reason: string }>
      >('quarantine:list', { tenantId, connectorType: 'salesforce' }),
    )
    const noTitleId = salesforce.idOf('Contact', NO_TITLE)
    const badEmailId = salesforce.idOf('Contact', BAD_EMAIL)
    expect(rejected.map((r) => r.externalId).sort()).toEqual([noTitleId, badEmailId].sort())
    expect(rejected.find((r) => r.externalId === noTitleId)!.reason).toMatch(/^title: /)

    callData(await call('mappings:set', { ...target, tenantId, mappings: [title] }))
    const auditBefore = new Set((await auditRows(tenantId)).map((r) => r.id))
    const result = callData(
      await call<{ retried: number; accepted: number; stillRejected: number }>('quarantine:retry', {
        tenantId,
        connectorType: 'salesforce',
      }),
    )
    expect(result).toEqual({ retried: 2, accepted: 1, stillRejected: 1 })

    const stored = await withTenant(owner.db, tenantId, (tx) =>
      tx
        .select()
        .from(people)
        .where(and(eq(people.tenantId, tenantId), eq(people.externalId, noTitleId))),
    )
    expect(stored).toHaveLength(1)
    expect(stored[0]).toMatchObject({
      firstName: `First${NO_TITLE}`,
      title: null,
      source: 'salesforce',
    })
    const left = await withTenant(owner.db, tenantId, (tx) =>
      tx.select().from(quarantine).where(eq(quarantine.tenantId, tenantId)),
    )
    expect(left.map((r) => r.externalId)).toEqual([badEmailId])
    expect(left[0]!.reason).toMatch(/^email: /)
    // Still tied to the run that read it.
    const badEmailRun = rejected.find((r) => r.externalId === badEmailId)!.runId
    expect(badEmailRun).not.toBeNull()
    expect(left[0]!.syncRunId).toBe(badEmailRun)

    // A table has no order of its own: the new entries are the ones not there before.
    const audit = (await auditRows(tenantId)).filter((r) => !auditBefore.has(r.id))
    expect(audit).toHaveLength(1)
    expect(audit[0]).toMatchObject({ action: 'quarantine.retry', userId: 'app:tester' })

    // Trying again changes nothing but the audit trail.
    const second = callData(
      await call<{ retried: number; accepted: number; stillRejected: number }>('quarantine:retry', {
        tenantId,
        connectorType: 'salesforce',
        ids: [left[0]!.id],
      }),
    )
    expect(second).toEqual({ retried: 1, accepted: 0, stillRejected: 1 })
  })
})
