import { asc, eq } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { auditLog, connectors, writebackQueue } from '../../../db/schema/index.js'
import { withTenant } from '../../../db/tenant.js'
import { writebackWorkflowId } from '../../../shared/temporal.js'
import { connectorRegistry } from '../../../src-agent/connectors/registry.js'
import { sealCredentials } from '../../../src-agent/pipeline/connection.js'
import { keyringFromHex } from '../../../src-agent/secrets/crypto.js'
import { enqueueWriteback } from '../../../src-agent/temporal/writeback.js'
import {
  writebackProgressQuery,
  type WritebackInput,
} from '../../../src-agent/temporal/workflows.js'
import { startWritebackFake, type WritebackFake } from '../../fakes/writeback.js'
import { TEST_KEY_HEX } from '../../helpers/agent.js'
import {
  connectTenant,
  expectReplays,
  startTemporalTestEnv,
  startTestWorker,
  waitFor,
  type TemporalTestEnv,
} from '../../helpers/temporal.js'
import { WRITEBACK_BATCH_SIZE } from '../../helpers/writeback-connector.js'

/** Fast retries for tests: 3 attempts, 100 ms then 200 ms apart. */
const FAST: Omit<WritebackInput, 'tenantId' | 'connectorType'> = {
  maxAttempts: 3,
  retryBaseMs: 100,
  idleTimeoutMs: 30_000,
}

describe('the writeback workflow', () => {
  let env: TemporalTestEnv
  let worker: Awaited<ReturnType<typeof startTestWorker>>
  const fakes: WritebackFake[] = []

  beforeAll(async () => {
    env = await startTemporalTestEnv('writeback')
    worker = await startTestWorker(env)
  })
  afterAll(async () => {
    await worker?.stop()
    await Promise.all(fakes.map((f) => f.close()))
    await env?.close()
  })

  const setup = async (options: Parameters<typeof startWritebackFake>[0] = {}) => {
    const fake = await startWritebackFake(options)
    fakes.push(fake)
    const tenantId = await connectTenant(env.activityDb, 'test-writeback', {
      baseUrl: fake.url,
      apiKey: fake.apiKey,
    })
    const enqueue = (items: unknown[], workflow = FAST) =>
      enqueueWriteback(
        {
          client: env.client,
          taskQueue: env.taskQueue,
          handle: env.activityDb,
          registry: connectorRegistry,
          userId: 'test:runner',
        },
        { tenantId, connectorType: 'test-writeback', items, workflow },
      )
    const queue = () =>
      withTenant(env.activityDb.db, tenantId, (tx) =>
        tx.select().from(writebackQueue).orderBy(asc(writebackQueue.seq)),
      )
    const settled = () =>
      waitFor(
        async () => {
          const rows = await queue()
          return rows.every((r) => r.status !== 'pending') ? rows : undefined
        },
        { what: 'the queue to drain', timeoutMs: 30_000 },
      )
    /** The connection's writeback workflow replays against the current workflow code. */
    const replays = () =>
      expectReplays(env, { workflowId: writebackWorkflowId(tenantId, 'test-writeback') })
    return { fake, tenantId, enqueue, queue, settled, replays }
  }
  const scores = (ids: string[]) =>
    ids.map((id, i) => ({ entityType: 'account', externalId: id, fields: { score: 50 + i } }))
  const ids = (n: number) =>
    Array.from({ length: n }, (_, i) => `001-${String(i + 1).padStart(3, '0')}`)

  it('sends queued items in batches and records each record’s outcome', async () => {
    const { fake, tenantId, enqueue, settled, replays } = await setup({
      reject: { '001-003': { statusCode: 'INVALID_FIELD', message: 'No such column Score__c' } },
      flaky: { '001-005': 2, '001-007': Infinity },
    })
    const queued = await enqueue(scores(ids(25)))
    expect(queued).toEqual({
      queued: 25,
      workflowId: writebackWorkflowId(tenantId, 'test-writeback'),
    })
    const rows = await settled()
    const byId = new Map(rows.map((r) => [r.externalId, r]))

    expect(rows.filter((r) => r.status === 'sent')).toHaveLength(23)
    expect(byId.get('001-001')).toMatchObject({ status: 'sent', attempts: 1, lastError: null })
    expect(byId.get('001-001')!.sentAt).toBeInstanceOf(Date)
    // A permanent per-record error fails at once; a transient one is retried until it works...
    expect(byId.get('001-003')).toMatchObject({
      status: 'failed',
      attempts: 1,
      lastError: 'INVALID_FIELD: No such column Score__c',
    })
    expect(byId.get('001-005')).toMatchObject({ status: 'sent', attempts: 3, lastError: null })
    // ...or until attempts run out.
    expect(byId.get('001-007')).toMatchObject({ status: 'failed', attempts: 3 })
    expect(byId.get('001-007')!.lastError).toMatch(/^Gave up after 3 attempts: UNABLE_TO_LOCK_ROW/)

    expect(fake.batches[0]).toEqual(ids(25).slice(0, 10))
    expect(Math.max(...fake.batches.map((b) => b.length))).toBeLessThanOrEqual(WRITEBACK_BATCH_SIZE)
    // Every item went out, first sends in queue order; retries join whichever batch is next.
    expect([...new Set(fake.batches.flat())]).toEqual(ids(25))
    expect(fake.applied.get('001-010')).toEqual({ Score__c: 59 })
    expect(fake.applied.has('001-003')).toBe(false)

    const handle = env.client.workflow.getHandle(writebackWorkflowId(tenantId, 'test-writeback'))
    // The rows settle a moment before the workflow has seen the last batch's result.
    const idle = await waitFor(async () => {
      const progress = await handle.query(writebackProgressQuery)
      return progress.phase === 'idle' ? progress : undefined
    })
    expect(idle).toMatchObject({ sent: 23, failed: 2 })
    const audit = await withTenant(env.activityDb.db, tenantId, (tx) => tx.select().from(auditLog))
    expect(audit.filter((a) => a.action === 'writeback.enqueue')).toHaveLength(1)
    expect(audit.filter((a) => a.action === 'writeback.send').length).toBeGreaterThanOrEqual(3)
    await replays()
  })

  it('retries a failed request with backoff, counting the attempt', async () => {
    const { fake, enqueue, settled, replays } = await setup({
      failFirst: { count: 1, status: 503 },
    })
    await enqueue(scores(ids(4)))
    const rows = await settled()
    expect(rows.map((r) => [r.status, r.attempts])).toEqual(Array(4).fill(['sent', 2]))
    expect(fake.batches).toHaveLength(1)
    await replays()
  })

  it('wakes the one workflow of the connection when more items are queued', async () => {
    const { tenantId, enqueue, settled, replays } = await setup()
    await enqueue(scores(['a-1', 'a-2']))
    await settled()
    const handle = env.client.workflow.getHandle(writebackWorkflowId(tenantId, 'test-writeback'))
    const { runId } = await handle.describe()
    await waitFor(async () => (await handle.query(writebackProgressQuery)).phase === 'idle')

    await enqueue(scores(['b-1', 'b-2', 'b-3']))
    const rows = await settled()
    expect(rows.map((r) => r.status)).toEqual(Array(5).fill('sent'))
    const after = await handle.describe()
    expect(after.runId).toBe(runId)
    expect(after.status.name).toBe('RUNNING')
    await waitFor(async () => (await handle.query(writebackProgressQuery)).sent === 5, {
      what: 'the workflow to count five sent items',
    })
    await replays()
  })

  it('stops on rejected credentials, keeps the items and marks the connection', async () => {
    const { tenantId, enqueue, queue, replays } = await setup()
    // The source revokes the key after the connection was made.
    await withTenant(env.activityDb.db, tenantId, async (tx) => {
      const [row] = await tx.select().from(connectors)
      const sealed = sealCredentials(keyringFromHex(TEST_KEY_HEX), tenantId, 'test-writeback', {
        baseUrl: (row!.config as { baseUrl: string }).baseUrl,
        apiKey: 'revoked-key-000',
      })
      await tx
        .update(connectors)
        .set({ encryptedCredentials: sealed })
        .where(eq(connectors.id, row!.id))
    })
    const { workflowId } = await enqueue(scores(['x-1']))
    await expect(env.client.workflow.getHandle(workflowId).result()).rejects.toThrow()
    const rows = await queue()
    expect(rows).toMatchObject([{ status: 'pending', attempts: 0 }])
    const [conn] = await withTenant(env.activityDb.db, tenantId, (tx) =>
      tx.select().from(connectors),
    )
    expect(conn).toMatchObject({ status: 'error' })
    expect(conn!.lastSyncError).toMatch(/^needs re-auth: /)
    await replays()
  })
})
