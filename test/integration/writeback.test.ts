import { asc } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { DbHandle } from '../../db/client.js'
import { writebackQueue } from '../../db/schema/index.js'
import { withTenant } from '../../db/tenant.js'
import { connectorRegistry } from '../../src-agent/connectors/registry.js'
import { queueWriteback } from '../../src-agent/pipeline/writeback/queue.js'
import { runWriteback } from '../../src-agent/pipeline/writeback/send.js'
import { keyringFromHex } from '../../src-agent/secrets/crypto.js'
import { vendorRequestsTotal } from '../../src-agent/telemetry/metrics.js'
import { setWritebackConfig } from '../../src-agent/services/writeback-config.js'
import { startWritebackFake, type WritebackFake } from '../fakes/writeback.js'
import { TEST_KEY_HEX, memoryLogger } from '../helpers/agent.js'
import { agentDb } from '../helpers/db.js'
import { connectTenant } from '../helpers/temporal.js'
import { WRITEBACK_BATCH_SIZE } from '../helpers/writeback-connector.js'

describe('sending queued writeback updates', () => {
  let db: DbHandle
  const fakes: WritebackFake[] = []
  const { log } = memoryLogger('warn')

  beforeAll(() => {
    db = agentDb()
  })
  afterAll(async () => {
    await Promise.all(fakes.map((f) => f.close()))
    await db.close()
  })

  const setup = async (options: Parameters<typeof startWritebackFake>[0] = {}) => {
    const fake = await startWritebackFake(options)
    fakes.push(fake)
    const tenantId = await connectTenant(db, 'test-writeback', {
      baseUrl: fake.url,
      apiKey: fake.apiKey,
    })
    const deps = {
      handle: db,
      keyring: keyringFromHex(TEST_KEY_HEX),
      registry: connectorRegistry,
      log,
    }
    const queue = (items: unknown[]) =>
      queueWriteback(
        { handle: db, registry: connectorRegistry, userId: 'test:runner' },
        { tenantId, connectorType: 'test-writeback', items },
      )
    const run = () =>
      runWriteback(deps, {
        tenantId,
        connectorType: 'test-writeback',
        maxAttempts: 3,
        retryBaseMs: 60_000,
      })
    const rows = () =>
      withTenant(db.db, tenantId, (tx) =>
        tx.select().from(writebackQueue).orderBy(asc(writebackQueue.seq)),
      )
    return { fake, tenantId, queue, run, rows }
  }

  it('never sends one item from two senders at once', async () => {
    const { fake, queue, run, rows } = await setup({ delayMs: 50 })
    const ids = Array.from({ length: 4 * WRITEBACK_BATCH_SIZE + 5 }, (_, i) => `001-${i}`)
    await queue(
      ids.map((externalId, i) => ({ entityType: 'account', externalId, fields: { score: i } })),
    )

    const [a, b] = await Promise.all([run(), run()])
    const sent = fake.batches.flat()
    expect(sent.toSorted()).toEqual(ids.toSorted())
    expect(a.sent + b.sent).toBe(ids.length)
    // Both senders took part: the claims split the queue between them.
    expect(a.sent).toBeGreaterThan(0)
    expect(b.sent).toBeGreaterThan(0)
    expect((await rows()).every((r) => r.status === 'sent' && r.attempts === 1)).toBe(true)
  })

  it('sends a record’s updates in the order they were queued, one per batch', async () => {
    const { fake, queue, run } = await setup()
    await queue([
      { entityType: 'account', externalId: '001-a', fields: { score: 1 } },
      { entityType: 'account', externalId: '001-b', fields: { score: 2 } },
      { entityType: 'account', externalId: '001-a', fields: { score: 3 } },
    ])
    expect(await run()).toMatchObject({ sent: 3, batches: 2 })
    expect(fake.batches).toEqual([['001-a', '001-b'], ['001-a']])
    expect(fake.applied.get('001-a')).toEqual({ Score__c: 3 })
  })

  it('counts its calls to the source under the tenant and the connector', async () => {
    const { tenantId, queue, run } = await setup()
    await queue([
      { entityType: 'account', externalId: '001-a', fields: { score: 1 } },
      { entityType: 'account', externalId: '001-a', fields: { score: 2 } },
    ])
    expect(await run()).toMatchObject({ sent: 2, batches: 2 })
    const calls = (await vendorRequestsTotal.get()).values.filter(
      (v) => v.labels.tenant === tenantId,
    )
    expect(calls).toEqual([
      expect.objectContaining({
        labels: { tenant: tenantId, connector: 'test-writeback', outcome: 'ok' },
        value: 2,
      }),
    ])
  })

  it('writes only the fields of the field map, and fails an item with none of them', async () => {
    const { fake, tenantId, queue, run, rows } = await setup()
    await setWritebackConfig(db.db, {
      tenantId,
      connectorType: 'test-writeback',
      entityType: 'account',
      fieldMap: [{ canonicalField: 'tier', targetField: 'Tier__c' }],
      userId: 'test:runner',
    })
    await queue([
      { entityType: 'account', externalId: '001-x', fields: { score: 9, tier: 'hot' } },
      { entityType: 'account', externalId: '001-y', fields: { score: 4 } },
    ])
    const summary = await run()
    expect(summary).toMatchObject({ sent: 1, failed: 1 })
    expect(fake.applied.get('001-x')).toEqual({ Tier__c: 'hot' })
    expect(fake.batches).toEqual([['001-x']])
    expect(summary.failures).toEqual([
      {
        entityType: 'account',
        externalId: '001-y',
        error: 'None of its fields (score) is in the account writeback field map (tier).',
      },
    ])
    expect((await rows()).map((r) => r.status)).toEqual(['sent', 'failed'])
  })

  it('refuses an invalid or unsupported item before queueing anything', async () => {
    const { queue, rows } = await setup()
    await expect(
      queue([
        { entityType: 'account', externalId: '001-1', fields: { score: 1 } },
        { entityType: 'person', externalId: '003-1', fields: { score: 1 } },
        { entityType: 'account', externalId: ' ', fields: { score: 1 } },
      ]),
    ).rejects.toThrow(
      /^Nothing was queued: item 1: Test CRM cannot write back person records \(only account\); item 2: externalId /,
    )
    expect(await rows()).toEqual([])
  })
})
