import { asc, eq } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { accounts, connectors, syncRuns, writebackQueue } from '../../../db/schema/index.js'
import { withTenant } from '../../../db/tenant.js'
import { writebackWorkflowId } from '../../../shared/temporal.js'
import '../../../src-agent/connectors/salesforce/index.js'
import { connectorRegistry } from '../../../src-agent/connectors/registry.js'
import {
  awaitSync,
  deleteSchedule,
  ensureSchedule,
  startSync,
} from '../../../src-agent/temporal/scheduler.js'
import { enqueueWriteback } from '../../../src-agent/temporal/writeback.js'
import { startSalesforceFake, type SalesforceFake } from '../../fakes/salesforce.js'
import {
  connectTenant,
  startTemporalTestEnv,
  startTestWorker,
  waitFor,
  type TemporalTestEnv,
} from '../../helpers/temporal.js'

describe('Salesforce under Temporal: scheduled syncs and the writeback workflow', () => {
  let env: TemporalTestEnv
  let worker: Awaited<ReturnType<typeof startTestWorker>>
  const fakes: SalesforceFake[] = []

  beforeAll(async () => {
    env = await startTemporalTestEnv('salesforce')
    worker = await startTestWorker(env)
  })
  afterAll(async () => {
    await worker?.stop()
    await Promise.all(fakes.map((f) => f.close()))
    await env?.close()
  })

  /** A Salesforce fake of its own and a fresh tenant connected to it. */
  const connected = async () => {
    const fake = await startSalesforceFake({ counts: { Account: 30 } })
    fakes.push(fake)
    const tenantId = await connectTenant(env.activityDb, 'salesforce', fake.connectConfig())
    return { fake, tenantId }
  }
  const runsOf = (tenantId: string) =>
    withTenant(env.activityDb.db, tenantId, (tx) =>
      tx.select().from(syncRuns).orderBy(asc(syncRuns.startedAt)),
    )

  it('syncs on its schedule: everything first, then only what changed', async () => {
    const { fake, tenantId } = await connected()
    const target = { tenantId, connectorType: 'salesforce' }
    await ensureSchedule(env.schedulerDeps(), { ...target, cron: '@every 2s' })
    try {
      // The first sync: one run per stream, each succeeded.
      const first = await waitFor(
        async () => {
          const done = (await runsOf(tenantId)).filter((r) => r.status === 'succeeded')
          return done.length >= 6 ? done.slice(0, 6) : undefined
        },
        { what: 'the first scheduled sync of every stream', timeoutMs: 30_000 },
      )
      expect(first.map((r) => r.stream)).toEqual([
        'accounts',
        'contacts',
        'leads',
        'opportunities',
        'tasks',
        'events',
      ])
      // 30 accounts, 30 contacts + 8 leads, 10 opportunities + 14 tasks + 6 events.
      expect(first.map((r) => r.created)).toEqual([30, 30, 8, 10, 14, 6])
      expect(first.every((r) => r.errors === 0)).toBe(true)

      const changed = fake.update('Account', fake.idOf('Account', 4), { Name: 'Renamed Co' })
      const later = await waitFor(
        async () => (await runsOf(tenantId)).find((r) => r.status === 'succeeded' && r.updated > 0),
        { what: 'a scheduled sync that picks up the change', timeoutMs: 30_000 },
      )
      expect(later).toMatchObject({
        stream: 'accounts',
        mode: 'incremental',
        created: 0,
        updated: 1,
      })
      const [row] = await withTenant(env.activityDb.db, tenantId, (tx) =>
        tx
          .select()
          .from(accounts)
          .where(eq(accounts.externalId, String(changed.Id))),
      )
      expect(row?.name).toBe('Renamed Co')
    } finally {
      await deleteSchedule(env.schedulerDeps(), target)
    }
  })

  it('syncs every stream as a run of its own; a failing stream fails the workflow after the others land', async () => {
    const { fake, tenantId } = await connected()
    fake.setInaccessible(['Lead'])
    const started = await startSync(env.schedulerDeps(), { tenantId, connectorType: 'salesforce' })
    const outcome = await awaitSync(started.handle)
    expect(outcome).toMatchObject({ status: 'failed' })
    expect('error' in outcome && outcome.error).toMatch(/^Leads: /)
    expect('streams' in outcome && outcome.streams.map((s) => [s.stream, s.status])).toEqual([
      ['accounts', 'succeeded'],
      ['contacts', 'succeeded'],
      ['leads', 'failed'],
      ['opportunities', 'succeeded'],
      ['tasks', 'succeeded'],
      ['events', 'succeeded'],
    ])
    const runs = await runsOf(tenantId)
    expect(runs.map((r) => [r.stream, r.status])).toEqual([
      ['accounts', 'succeeded'],
      ['contacts', 'succeeded'],
      ['leads', 'failed'],
      ['opportunities', 'succeeded'],
      ['tasks', 'succeeded'],
      ['events', 'succeeded'],
    ])
    // 30 accounts, 30 contacts, 10 opportunities + 14 tasks + 6 events landed without the leads.
    expect(runs.reduce((sum, r) => sum + r.created, 0)).toBe(90)

    // Once leads can be read, a sync of that one stream reads them and the connection recovers.
    fake.setInaccessible([])
    const again = await startSync(env.schedulerDeps(), {
      tenantId,
      connectorType: 'salesforce',
      stream: 'leads',
    })
    expect(await awaitSync(again.handle)).toMatchObject({ status: 'succeeded', created: 8 })
    const [connection] = await withTenant(env.activityDb.db, tenantId, (tx) =>
      tx.select().from(connectors),
    )
    expect(connection).toMatchObject({ status: 'connected', lastSyncError: null })
  })

  it('writes scores back through the writeback workflow, holding disabled entity types back', async () => {
    const { fake, tenantId } = await connected()
    const ids = [0, 1, 2].map((i) => fake.idOf('Account', i))
    const contact = fake.idOf('Contact', 0)
    const { queued, workflowId } = await enqueueWriteback(
      {
        client: env.client,
        taskQueue: env.taskQueue,
        handle: env.activityDb,
        registry: connectorRegistry,
        userId: 'test:runner',
      },
      {
        tenantId,
        connectorType: 'salesforce',
        items: [
          ...ids.map((externalId, i) => ({
            entityType: 'account',
            externalId,
            fields: { combinedScore: 80 + i, tier: 'hot', scoredAt: '2026-11-01T00:00:00Z' },
          })),
          { entityType: 'person', externalId: contact, fields: { combinedScore: 5 } },
        ],
        workflow: { idleTimeoutMs: 5_000 },
      },
    )
    expect(queued).toBe(4)
    expect(workflowId).toBe(writebackWorkflowId(tenantId, 'salesforce'))
    const rows = await waitFor(
      async () => {
        const rows = await withTenant(env.activityDb.db, tenantId, (tx) =>
          tx.select().from(writebackQueue).orderBy(asc(writebackQueue.seq)),
        )
        return rows.filter((r) => r.status === 'sent').length === 3 ? rows : undefined
      },
      { what: 'the account scores to be written', timeoutMs: 20_000 },
    )
    expect(rows.map((r) => [r.entityType, r.status])).toEqual([
      ['account', 'sent'],
      ['account', 'sent'],
      ['account', 'sent'],
      ['person', 'pending'],
    ])
    expect(fake.record('Account', ids[2]!)).toMatchObject({
      GTM_Score__c: 82,
      GTM_Tier__c: 'hot',
      GTM_Scored_At__c: '2026-11-01T00:00:00.000+0000',
    })
    expect(fake.record('Contact', contact)).toMatchObject({ GTM_Score__c: null })
    const [connection] = await withTenant(env.activityDb.db, tenantId, (tx) =>
      tx.select().from(connectors),
    )
    expect(connection?.status).toBe('connected')
  })
})
