import { and, asc, eq } from 'drizzle-orm'
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  activities,
  connectors,
  people,
  quarantine,
  webhookInbox,
} from '../../../db/schema/index.js'
import { withTenant } from '../../../db/tenant.js'
import { startCustomerioFake, type CustomerioFake } from '../../fakes/customerio.js'
import { runCli, stderrLines } from '../../helpers/cli.js'
import { connectorCli, serveWebhooks } from '../../helpers/connector-cli.js'
import { ownerDb } from '../../helpers/db.js'
import { waitFor } from '../../helpers/temporal.js'

const DAY = 86_400
const now = () => Math.floor(Date.now() / 1000)

describe('Customer.io (customerio): email engagement and people, by sync and by webhook', () => {
  let fake: CustomerioFake
  const owner = ownerDb()
  const { env, newTenant, connect, sync, syncTraced } = connectorCli('customerio')

  // A fake of its own for each test: what one test adds never shows in another's sync.
  beforeEach(async () => {
    fake = await startCustomerioFake({ pageSize: 2 })
  })
  afterEach(async () => {
    await fake.close()
  })
  afterAll(async () => {
    await owner.close()
  })

  const config = () => ({
    appApiKey: fake.appApiKey,
    baseUrl: fake.url,
    webhookSigningKey: fake.signingKey,
  })
  const stored = (tenantId: string) =>
    withTenant(owner.db, tenantId, async (tx) => ({
      activities: await tx
        .select()
        .from(activities)
        .where(and(eq(activities.tenantId, tenantId), eq(activities.source, 'customerio')))
        .orderBy(asc(activities.externalId)),
      people: await tx
        .select()
        .from(people)
        .where(and(eq(people.tenantId, tenantId), eq(people.source, 'customerio')))
        .orderBy(asc(people.externalId)),
      quarantined: await tx.select().from(quarantine).where(eq(quarantine.tenantId, tenantId)),
    }))

  it('refuses a wrong App API key in one error line and stores nothing', async () => {
    const tenantId = await newTenant()
    const result = await connect(tenantId, { appApiKey: 'cio_wrong_key_0000', baseUrl: fake.url })
    expect(result.code).toBe(1)
    expect(stderrLines(result).filter((l) => l.startsWith('error:'))).toEqual([
      expect.stringMatching(/^error: Customer\.io /) as unknown,
    ])
    expect(result.stderr).not.toContain('cio_wrong_key_0000')
    const rows = await withTenant(owner.db, tenantId, (tx) =>
      tx.select().from(connectors).where(eq(connectors.tenantId, tenantId)),
    )
    expect(rows).toEqual([])
  })

  it('backfills one activity per delivery per state and the people, through 429s, and catches a later open on an older delivery', async () => {
    const tenantId = await newTenant()
    const t0 = now() - 2 * DAY
    const prefix = `${tenantId}-`
    const d1 = fake.addDelivery({ id: `${prefix}d1`, created: t0 })
    fake.reach(d1.id, 'opened', t0 + 600)
    fake.reach(d1.id, 'clicked', t0 + 700)
    fake.addDelivery({ id: `${prefix}d2`, created: t0 + 100 })
    fake.addDelivery({
      id: `${prefix}d3`,
      created: t0 + 200,
      metrics: { sent: t0 + 201, bounced: t0 + 260 },
    })
    fake.addRawDelivery({
      id: `${prefix}bad`,
      type: 'email',
      created: t0 + 300,
      metrics: { sent: 'soon' },
    })
    fake.addDelivery({ id: `${prefix}old`, created: now() - 40 * DAY })
    fake.addCustomer({ id: `${prefix}c1`, email: 'Ada@Example.com', cio_id: 'a1' })
    fake.addCustomer({ id: null, email: `${prefix}grace@example.com`, cio_id: 'a2' })
    expect((await connect(tenantId, config())).code).toBe(0)

    fake.throttleNext(3)
    const { summary: first, output } = await syncTraced(tenantId)
    expect(first).toMatchObject({ status: 'succeeded', errors: 1 })
    // Logged at every level, the key never shows.
    expect(output).toContain('"msg":"page committed"')
    expect(output).not.toContain(fake.appApiKey)
    expect(output).not.toContain(fake.signingKey)
    expect(fake.requests.filter((r) => r.status === 429)).toHaveLength(3)

    const { activities: acts, people: persons, quarantined } = await stored(tenantId)
    const ours = acts.filter((a) => a.externalId.startsWith(prefix))
    expect(ours.map((a) => a.externalId)).toEqual([
      `${prefix}d1:click`,
      `${prefix}d1:delivered`,
      `${prefix}d1:open`,
      `${prefix}d1:sent`,
      `${prefix}d2:delivered`,
      `${prefix}d2:sent`,
      `${prefix}d3:bounced`,
      `${prefix}d3:sent`,
    ])
    const open = ours.find((a) => a.externalId === `${prefix}d1:open`)!
    expect(open).toMatchObject({
      type: 'email_open',
      channel: 'email',
      personExternalId: `cust-${prefix}d1`,
      properties: {
        campaignId: 23,
        actionId: 96,
        deliveryId: `${prefix}d1`,
        subject: 'Welcome to Acme',
      },
    })
    expect(open.occurredAt.toISOString()).toBe(new Date((t0 + 600) * 1000).toISOString())
    expect(quarantined.map((q) => q.externalId)).toEqual([`${prefix}bad:sent`])
    expect(quarantined[0]!.reason).toMatch(/^occurredAt: /)
    expect(
      persons.filter(
        (p) =>
          p.externalId.includes(prefix) ||
          p.email?.includes(prefix) ||
          p.email === 'ada@example.com',
      ),
    ).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ externalId: `${prefix}c1`, email: 'ada@example.com' }),
        expect.objectContaining({ externalId: `${prefix}grace@example.com` }),
      ]),
    )

    // Two days after it was sent, d2 is opened: the next sync reads back far enough to see it.
    fake.reach(`${prefix}d2`, 'opened', now() - 60)
    const later = await sync(tenantId, ['--stream', 'email_activity'])
    expect(later).toMatchObject({ status: 'succeeded', created: 1 })
    expect((await stored(tenantId)).activities.map((a) => a.externalId)).toContain(
      `${prefix}d2:open`,
    )
  })

  it('says whether it is healthy: healthy, then down when Customer.io is gone', async () => {
    const tenantId = await newTenant()
    expect((await connect(tenantId, config())).code).toBe(0)
    const healthy = await runCli(['health', 'customerio', '--tenant', tenantId, '--json'], env())
    expect(JSON.parse(healthy.stdout)).toMatchObject({ status: 'healthy' })
    const other = await startCustomerioFake()
    const second = await newTenant()
    expect((await connect(second, { appApiKey: other.appApiKey, baseUrl: other.url })).code).toBe(0)
    await other.close()
    const down = await runCli(['health', 'customerio', '--tenant', second, '--json'], env())
    expect(JSON.parse(down.stdout)).toMatchObject({ status: 'down' })
  })

  it('takes a webhook event once (three deliveries), makes the same activity a backfill would, and refuses bad signatures and other channels', async () => {
    const tenantId = await newTenant()
    expect((await connect(tenantId, config())).code).toBe(0)
    const server = await serveWebhooks(env())
    try {
      const origin = server.origin
      const post = (d: { headers: Record<string, string>; body: string }) =>
        fetch(`${origin}/webhooks/customerio/${tenantId}`, {
          method: 'POST',
          headers: d.headers,
          body: d.body,
        })
      const deliveryId = `${tenantId}-w1`
      const openedAt = now() - 30
      const opened = {
        event_id: `01E4C4CT6YDC7Y5M7FE1GWWPQ${tenantId.slice(-4)}`,
        object_type: 'email',
        metric: 'opened',
        timestamp: openedAt,
        data: {
          customer_id: '42',
          identifiers: { id: '42', email: 'ada@example.com', cio_id: 'a3000001' },
          delivery_id: deliveryId,
          campaign_id: 23,
          action_id: 96,
          subject: 'Welcome',
        },
      }
      const delivery = fake.signed(opened)
      for (let i = 0; i < 3; i++) expect((await post(delivery)).status).toBeLessThan(300)
      const push = fake.signed({
        ...opened,
        event_id: `push-${tenantId}`,
        object_type: 'push',
        metric: 'opened',
      })
      expect((await post(push)).status).toBeLessThan(300)
      expect(
        (
          await post(
            fake.signed({ ...opened, event_id: 'forged' }, { key: 'not-the-signing-key-0000' }),
          )
        ).status,
      ).toBe(401)
      expect(
        (await post(fake.signed({ ...opened, event_id: 'stale' }, { timestamp: now() - 600 })))
          .status,
      ).toBe(401)

      await waitFor(
        async () => {
          const inbox = await withTenant(owner.db, tenantId, (tx) =>
            tx.select().from(webhookInbox).where(eq(webhookInbox.tenantId, tenantId)),
          )
          return inbox.length === 2 && inbox.every((r) => r.status === 'processed')
            ? inbox
            : undefined
        },
        { timeoutMs: 20_000, what: 'the webhook events to be processed' },
      )
      let acts = (await stored(tenantId)).activities
      expect(acts.map((a) => [a.externalId, a.type])).toEqual([
        [`${deliveryId}:open`, 'email_open'],
      ])

      // The backfill later reads the same delivery and its open: still one activity for the open.
      fake.addDelivery({
        id: deliveryId,
        created: openedAt - 120,
        customer_id: '42',
        metrics: { sent: openedAt - 119, opened: openedAt },
      })
      await sync(tenantId, ['--stream', 'email_activity'])
      acts = (await stored(tenantId)).activities
      expect(acts.filter((a) => a.externalId === `${deliveryId}:open`)).toHaveLength(1)
      expect(acts.every((a) => a.type.startsWith('email_') && a.channel === 'email')).toBe(true)
    } finally {
      const result = await server.stop()
      expect(result.stdout + result.stderr).not.toContain(fake.signingKey)
      expect(result.stdout + result.stderr).not.toContain(fake.appApiKey)
    }
  })
})
