import { randomBytes } from 'node:crypto'
import type { ChildProcess } from 'node:child_process'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { eq } from 'drizzle-orm'
import type { DbHandle } from '../../db/client.js'
import { connectors, webhookInbox } from '../../db/schema/index.js'
import { withTenant } from '../../db/tenant.js'
import { connect } from '../../src-agent/services/connections.js'
import { processEvent, storeEvents } from '../../src-agent/webhooks/inbox.js'
import {
  deliverPagerWebhook,
  pagerEvent,
  type DeliverOptions,
  type PagerWebhookEvent,
} from '../fakes/pager-webhooks.js'
import { startPagerFake, type PagerFake } from '../fakes/pager.js'
import {
  agentFixture,
  connectedTenant as connectedPagerTenant,
  TEST_KEY_HEX,
  type AgentFixture,
} from '../helpers/agent.js'
import { repoRoot, runCli, type CliResult } from '../helpers/cli.js'
import { databaseUrl, ownerDb, seedTenant } from '../helpers/db.js'

const testConnectorModule = path.join(repoRoot, 'test/helpers/test-connector.ts')

/** One `gtm-agent webhooks serve` process. */
interface Serve {
  url: string
  /** Stops it with SIGTERM and returns what it wrote. */
  stop(): Promise<CliResult>
}

describe('webhooks serve', () => {
  let agent: AgentFixture
  let owner: DbHandle
  let fake: PagerFake
  const running = new Set<Serve>()
  /** Everything every serve process wrote, for the secret check. */
  const outputs: string[] = []
  /** Every signing key and API key given to a connection. */
  const secrets: string[] = []

  const env = {
    DATABASE_URL: undefined as string | undefined,
    GTM_CONNECTOR_MODULES: testConnectorModule,
    CONNECTOR_ENCRYPTION_KEY: TEST_KEY_HEX,
  }

  const serve = async (extra: Record<string, string> = {}): Promise<Serve> => {
    let child: ChildProcess | undefined
    let stdout = ''
    let announced: (url: string) => void = () => undefined
    const url = new Promise<string>((resolve) => (announced = resolve))
    const done = runCli(
      ['webhooks', 'serve', '--port', '0'],
      { ...env, ...extra },
      {
        onStart: (c) => {
          child = c
          c.stdout?.on('data', (chunk: Buffer) => {
            stdout += chunk.toString()
            const match = /Receiving webhooks at (http:\/\/\S+)\/webhooks/.exec(stdout)
            if (match) announced(match[1]!)
          })
        },
      },
    ).then((result) => {
      outputs.push(result.stdout, result.stderr)
      return result
    })
    const started = await Promise.race([url, done.then((r) => r)])
    if (typeof started !== 'string') throw new Error(`serve exited: ${started.stderr}`)
    const handle: Serve = {
      url: started,
      stop: async () => {
        running.delete(handle)
        child?.kill('SIGTERM')
        return done
      },
    }
    running.add(handle)
    return handle
  }

  /** A new tenant connected to test-pages, with a signing key of its own. */
  const connectedTenant = async (): Promise<{ tenantId: string; key: string }> => {
    const tenantId = await seedTenant(agent.handle)
    const key = `whsec-${randomBytes(16).toString('hex')}`
    secrets.push(key)
    await connect(
      { db: agent.handle.db, registry: agent.registry, keyring: agent.keyring, log: agent.log },
      {
        tenantId,
        connectorType: 'test-pages',
        configJson: { baseUrl: fake.url, apiKey: fake.apiKey, webhookSigningKey: key },
        userId: agent.userId,
      },
    )
    return { tenantId, key }
  }

  const post = (
    server: Serve,
    tenantId: string,
    event: PagerWebhookEvent | null,
    options: DeliverOptions,
    type = 'test-pages',
  ) =>
    deliverPagerWebhook(
      `${server.url}/webhooks/${type}/${encodeURIComponent(tenantId)}`,
      event,
      options,
    )

  const inbox = async (tenantId: string) =>
    (
      await owner.pool.query<{
        event_id: string
        status: string
        attempts: number
        stream: string | null
        event_type: string
        error: string | null
        payload: unknown
      }>(
        'select event_id, status, attempts, stream, event_type, error, payload from webhook_inbox where tenant_id = $1 order by received_at',
        [tenantId],
      )
    ).rows

  const count = async (table: string, tenantId: string): Promise<number> => {
    const column = table === 'quarantine' ? 'connector' : 'source'
    const res = await owner.pool.query<{ n: string }>(
      `select count(*) as n from ${table} where tenant_id = $1 and ${column} = 'test-pages'`,
      [tenantId],
    )
    return Number(res.rows[0]!.n)
  }

  /** Waits until no event of the tenant is pending (processed or failed). */
  const settled = async (tenantId: string, expected: number, timeoutMs = 20_000) => {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const rows = await inbox(tenantId)
      if (rows.length === expected && rows.every((r) => r.status !== 'pending')) return rows
      if (Date.now() > deadline) {
        throw new Error(`inbox of ${tenantId} did not settle: ${JSON.stringify(rows)}`)
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }

  /** Waits until the event has been tried `attempts` times. */
  const attempted = async (tenantId: string, eventId: string, attempts: number) => {
    const deadline = Date.now() + 20_000
    for (;;) {
      const row = (await inbox(tenantId)).find((r) => r.event_id === eventId)
      if (row && row.attempts >= attempts) return row
      if (Date.now() > deadline) throw new Error(`event ${eventId} was not tried ${attempts} times`)
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }

  const person = (id: string, email = `${id}@example.com`) => ({
    kind: 'person' as const,
    id,
    email,
    first_name: 'Ada',
    updatedAt: '2026-03-01T00:00:00Z',
  })
  /** An account; `null` leaves its name out. */
  const account = (id: string, name: string | null = `Account ${id}`) => ({
    kind: 'account' as const,
    id,
    ...(name === null ? {} : { name }),
    updatedAt: '2026-03-01T00:00:00Z',
  })
  const activity = (id: string, personId: string) => ({
    kind: 'activity' as const,
    id,
    type: 'email_open',
    occurred_at: '2026-03-01T10:00:00Z',
    person_id: personId,
    updatedAt: '2026-03-01T10:00:00Z',
  })

  let server: Serve

  beforeAll(async () => {
    agent = agentFixture()
    owner = ownerDb()
    env.DATABASE_URL = databaseUrl()
    fake = await startPagerFake({ apiKey: `pager-secret-${randomBytes(6).toString('hex')}` })
    secrets.push(fake.apiKey)
    server = await serve()
  })

  afterAll(async () => {
    for (const s of [...running]) await s.stop()
    await fake?.close()
    await owner?.close()
    await agent?.close()
  })

  it('stores a signed event before answering, then lands its records', async () => {
    const { tenantId, key } = await connectedTenant()
    const event = pagerEvent('evt-1', [person('p-1'), account('acc-1'), activity('act-1', 'p-1')], {
      stream: 'records',
    })
    const answer = await post(server, tenantId, event, { key })
    expect(answer.status).toBe(202)
    expect(JSON.parse(answer.body)).toEqual({ received: 1, duplicates: 0 })
    // Written before the 2xx: the row is there the moment the answer is.
    const [stored] = await inbox(tenantId)
    expect(stored).toMatchObject({
      event_id: 'evt-1',
      stream: 'records',
      event_type: 'records.changed',
    })
    expect(stored!.payload).toMatchObject({ event_id: 'evt-1' })

    const [row] = await settled(tenantId, 1)
    expect(row).toMatchObject({ status: 'processed', attempts: 1, error: null })
    const people = await owner.pool.query<{ external_id: string; email: string }>(
      `select external_id, email from people where tenant_id = $1 and source = 'test-pages'`,
      [tenantId],
    )
    expect(people.rows).toEqual([{ external_id: 'p-1', email: 'p-1@example.com' }])
    expect(await count('accounts', tenantId)).toBe(1)
    expect(await count('activities', tenantId)).toBe(1)
  })

  it('refuses a wrong signature (401) and stores nothing', async () => {
    const { tenantId, key } = await connectedTenant()
    const event = pagerEvent('evt-bad', [person('p-x')])
    const wrong = await post(server, tenantId, event, { key, signature: 'ab'.repeat(32) })
    expect(wrong.status).toBe(401)
    expect(JSON.parse(wrong.body)).toEqual({ error: 'invalid signature' })
    const unsigned = await post(server, tenantId, event, { key, unsigned: true })
    expect(unsigned.status).toBe(401)
    // Signed with another key over the same body.
    const otherKey = await post(server, tenantId, event, { key: `${key}x` })
    expect(otherKey.status).toBe(401)
    expect(await inbox(tenantId)).toEqual([])
    expect(await count('people', tenantId)).toBe(0)
  })

  it('refuses a timestamp more than 300 s away (401), signed or not', async () => {
    const { tenantId, key } = await connectedTenant()
    const now = Math.floor(Date.now() / 1000)
    const stale = await post(server, tenantId, pagerEvent('evt-old', [person('p-o')]), {
      key,
      timestamp: now - 301,
    })
    expect(stale.status).toBe(401)
    const future = await post(server, tenantId, pagerEvent('evt-new', [person('p-n')]), {
      key,
      timestamp: now + 301,
    })
    expect(future.status).toBe(401)
    const recent = await post(server, tenantId, pagerEvent('evt-ok', [person('p-k')]), {
      key,
      timestamp: now - 200,
    })
    expect(recent.status).toBe(202)
    expect((await inbox(tenantId)).map((r) => r.event_id)).toEqual(['evt-ok'])
  })

  it('answers 404 for an unknown type or tenant, and a tenant without that connection', async () => {
    const { tenantId, key } = await connectedTenant()
    const bare = await seedTenant(agent.handle)
    const event = pagerEvent('evt-404', [person('p-4')])
    const answers = await Promise.all([
      post(server, tenantId, event, { key }, 'no-such-connector'),
      // A connector without the webhooks capability counts as unknown.
      post(server, tenantId, event, { key }, 'salesforce'),
      post(server, `missing-${randomBytes(4).toString('hex')}`, event, { key }),
      post(server, 'Not A Tenant!', event, { key }),
      post(server, bare, event, { key }),
    ])
    expect(answers.map((a) => a.status)).toEqual([404, 404, 404, 404, 404])
    // Every 404 says the same, so it tells nothing about what exists.
    expect(new Set(answers.map((a) => a.body)).size).toBe(1)
    const wrongPath = await deliverPagerWebhook(
      `${server.url}/hooks/test-pages/${tenantId}`,
      event,
      {
        key,
      },
    )
    expect(wrongPath.status).toBe(404)
    expect(await inbox(tenantId)).toEqual([])
  })

  it('answers 400 with a short reason for a malformed body', async () => {
    const { tenantId, key } = await connectedTenant()
    const notJson = await post(server, tenantId, null, {
      key,
      rawBody: Buffer.from('{"event_id": '),
    })
    expect(notJson.status).toBe(400)
    expect(JSON.parse(notJson.body)).toEqual({ error: 'the body is not JSON' })
    const noId = await post(server, tenantId, null, {
      key,
      rawBody: Buffer.from(JSON.stringify({ event_type: 'x', timestamp: 1, records: [] })),
    })
    expect(noId.status).toBe(400)
    expect((JSON.parse(noId.body) as { error: string }).error).toMatch(/^event_id: /)
    expect(await inbox(tenantId)).toEqual([])
  })

  it('answers 413 for a body over the limit, without reading it, and stores nothing', async () => {
    const { tenantId, key } = await connectedTenant()
    const big = pagerEvent('evt-big', [{ ...person('p-big'), notes: 'x'.repeat(70 * 1024) }])
    const declared = await post(server, tenantId, big, { key })
    expect(declared.status).toBe(413)
    const chunked = await post(server, tenantId, big, { key, chunked: true })
    expect(chunked.status).toBe(413)
    // A wrong signature does not matter: the size is checked first.
    const unsigned = await post(server, tenantId, big, { key, unsigned: true })
    expect(unsigned.status).toBe(413)
    // Far past the limit the sender is cut off once the answer is out: it reads the 413 or meets
    // the closed connection, and it never hangs.
    const huge = pagerEvent('evt-huge', [{ ...person('p-huge'), notes: 'y'.repeat(4 << 20) }])
    const cut = await post(server, tenantId, huge, { key, chunked: true }).then(
      (d) => d.status,
      (err: NodeJS.ErrnoException) => err.code,
    )
    expect([413, 'ECONNRESET', 'EPIPE']).toContain(cut)
    expect(await inbox(tenantId)).toEqual([])
    // The server still answers.
    const after = await post(server, tenantId, pagerEvent('evt-small', [person('p-s')]), { key })
    expect(after.status).toBe(202)
  })

  it('stores and processes a redelivered event once, also when deliveries race', async () => {
    const { tenantId, key } = await connectedTenant()
    const event = pagerEvent('evt-dup', [person('p-d'), account('acc-d')])
    expect((await post(server, tenantId, event, { key })).status).toBe(202)
    await settled(tenantId, 1)
    const again = await post(server, tenantId, event, { key })
    expect(again.status).toBe(200)
    expect(JSON.parse(again.body)).toEqual({ received: 1, duplicates: 1 })

    // Racing deliveries of a new event, to two agents sharing the inbox.
    const second = await serve()
    const race = pagerEvent('evt-race', [person('p-r'), activity('act-r', 'p-r')])
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        post(i % 2 === 0 ? server : second, tenantId, race, { key }),
      ),
    )
    expect(answers.filter((a) => a.status === 202)).toHaveLength(1)
    expect(answers.filter((a) => a.status === 200)).toHaveLength(7)
    // The agent that stored it processes it; stopped before that, it would leave the event to
    // the next sweep of an agent (a minute), so it stops only once the inbox has settled.
    const rows = await settled(tenantId, 2)
    await second.stop()
    expect(rows.map((r) => [r.event_id, r.status, r.attempts])).toEqual([
      ['evt-dup', 'processed', 1],
      ['evt-race', 'processed', 1],
    ])
    expect(await count('people', tenantId)).toBe(2)
    expect(await count('activities', tenantId)).toBe(1)
  })

  it('quarantines a bad record of an event and lands the rest', async () => {
    const { tenantId, key } = await connectedTenant()
    const event = pagerEvent('evt-poison', [
      account('acc-ok'),
      account('acc-noname', null),
      person('p-ok'),
    ])
    expect((await post(server, tenantId, event, { key })).status).toBe(202)
    const [row] = await settled(tenantId, 1)
    expect(row).toMatchObject({ status: 'processed', attempts: 1 })
    expect(await count('accounts', tenantId)).toBe(1)
    expect(await count('people', tenantId)).toBe(1)
    const quarantined = await owner.pool.query<{
      external_id: string
      reason: string
      sync_run_id: string | null
    }>('select external_id, reason, sync_run_id from quarantine where tenant_id = $1', [tenantId])
    expect(quarantined.rows).toEqual([
      { external_id: 'acc-noname', reason: quarantined.rows[0]?.reason, sync_run_id: null },
    ])
    expect(quarantined.rows[0]?.reason).toMatch(/name/)
  })

  it('leaves an event that fails pending, processes the others, and retries it after a restart', async () => {
    const { tenantId, key } = await connectedTenant()
    // A mapping that no longer validates (written behind the service's back) fails accounts.
    const connection = await owner.pool.query<{ id: string }>(
      `select id from connectors where tenant_id = $1 and type = 'test-pages'`,
      [tenantId],
    )
    await owner.pool.query(
      `insert into field_mappings (tenant_id, connector_id, entity_type, mappings) values ($1, $2, 'account', $3)`,
      [
        tenantId,
        connection.rows[0]!.id,
        JSON.stringify([{ sourceField: 'name', targetField: 'noSuchField', transform: 'none' }]),
      ],
    )
    const own = await serve()
    expect(
      (
        await post(own, tenantId, pagerEvent('evt-fails', [account('acc-f'), person('p-f1')]), {
          key,
        })
      ).status,
    ).toBe(202)
    expect(
      (await post(own, tenantId, pagerEvent('evt-fine', [person('p-f2')]), { key })).status,
    ).toBe(202)
    const failed = await attempted(tenantId, 'evt-fails', 1)
    expect(failed).toMatchObject({ status: 'pending', attempts: 1 })
    expect(failed.error).toMatch(/noSuchField/)
    await attempted(tenantId, 'evt-fine', 1)
    const rows = await inbox(tenantId)
    expect(rows.find((r) => r.event_id === 'evt-fine')).toMatchObject({
      status: 'processed',
      error: null,
    })
    // Nothing of the failed event was written, not even its person.
    const people = await owner.pool.query<{ external_id: string }>(
      'select external_id from people where tenant_id = $1',
      [tenantId],
    )
    expect(people.rows.map((r) => r.external_id)).toEqual(['p-f2'])

    await own.stop()
    await owner.pool.query('delete from field_mappings where tenant_id = $1', [tenantId])
    const restarted = await serve()
    const settledRows = await settled(tenantId, 2)
    await restarted.stop()
    expect(settledRows.find((r) => r.event_id === 'evt-fails')).toMatchObject({
      status: 'processed',
      attempts: 2,
      error: null,
    })
    expect(await count('accounts', tenantId)).toBe(1)
    expect(await count('people', tenantId)).toBe(2)
  })

  it('does not let one tenant’s signing key post into another tenant', async () => {
    const a = await connectedTenant()
    const b = await connectedTenant()
    const event = pagerEvent('evt-cross', [person('p-cross')])
    const answer = await post(server, b.tenantId, event, { key: a.key })
    expect(answer.status).toBe(401)
    expect(await inbox(b.tenantId)).toEqual([])
    expect(await inbox(a.tenantId)).toEqual([])
    // Its own key works, and the event is B's alone.
    expect((await post(server, b.tenantId, event, { key: b.key })).status).toBe(202)
    expect(await inbox(a.tenantId)).toEqual([])
  })

  it('logs one line per request without headers, bodies or secrets', async () => {
    const result = await server.stop()
    expect(result.code).toBe(0)
    const all = [...outputs].join('\n')
    for (const secret of secrets) expect(all).not.toContain(secret)
    expect(all).not.toMatch(/x-cio-signature|x-cio-timestamp/i)
    expect(all).not.toContain('Ada')
    const requests = result.stderr
      .split('\n')
      .filter((line) => line.includes('"webhook request"'))
      .map((line) => JSON.parse(line) as Record<string, unknown>)
    expect(requests.length).toBeGreaterThan(20)
    const statuses = new Set(requests.map((r) => r.status))
    for (const status of [200, 202, 400, 401, 404, 413]) expect(statuses).toContain(status)
    const refused = requests.find((r) => r.status === 401)
    expect(refused).toMatchObject({ connector: 'test-pages' })
    expect(refused?.reason).toMatch(/signature|timestamp/)
  })
})

describe('webhook inbox processing', () => {
  let agent: AgentFixture
  let fake: PagerFake

  beforeAll(async () => {
    agent = agentFixture()
    fake = await startPagerFake()
  })
  afterAll(async () => {
    await fake?.close()
    await agent?.close()
  })

  it('processes an event once when two processors reach for it together', async () => {
    const deps = { db: agent.handle.db, registry: agent.registry }
    const tenantId = await connectedPagerTenant(agent, fake)
    const events = Array.from({ length: 5 }, (_, i) => ({
      eventId: `evt-${i}`,
      type: 'records.changed',
      payload: { i },
      records: [
        {
          entityType: 'person' as const,
          data: { kind: 'person', id: `p-${i}`, email: `p${i}@example.com` },
        },
      ],
    }))
    const ids = await withTenant(agent.handle.db, tenantId, async (tx) => {
      const [connection] = await tx
        .select({ id: connectors.id })
        .from(connectors)
        .where(eq(connectors.type, 'test-pages'))
      await storeEvents(tx, {
        tenantId,
        connectorId: connection!.id,
        source: 'test-pages',
        events,
      })
      return (await tx.select({ id: webhookInbox.id }).from(webhookInbox)).map((r) => r.id)
    })
    expect(ids).toHaveLength(5)
    const outcomes = await Promise.all(
      ids.flatMap((id) => [processEvent(deps, tenantId, id), processEvent(deps, tenantId, id)]),
    )
    const byOutcome = (name: string) => outcomes.filter((o) => o.outcome === name).length
    expect({ processed: byOutcome('processed'), skipped: byOutcome('skipped') }).toEqual({
      processed: 5,
      skipped: 5,
    })
    const rows = await withTenant(agent.handle.db, tenantId, (tx) =>
      tx
        .select({ status: webhookInbox.status, attempts: webhookInbox.attempts })
        .from(webhookInbox),
    )
    expect(rows.every((r) => r.status === 'processed' && r.attempts === 1)).toBe(true)
  })
})
