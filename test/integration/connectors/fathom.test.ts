import { and, asc, eq } from 'drizzle-orm'
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  activities,
  connectors,
  fathomMeetings,
  quarantine,
  webhookInbox,
} from '../../../db/schema/index.js'
import { withTenant } from '../../../db/tenant.js'
import { startFathomFake, type FathomFake } from '../../fakes/fathom.js'
import { runCli, stderrLines } from '../../helpers/cli.js'
import { connectorCli, serveWebhooks } from '../../helpers/connector-cli.js'
import { ownerDb } from '../../helpers/db.js'
import { waitFor } from '../../helpers/temporal.js'

const MIN = 60_000

describe('Fathom (fathom): meetings and their content, by sync and by webhook', () => {
  let fake: FathomFake
  const owner = ownerDb()
  const { env, newTenant, connect, sync, syncTraced } = connectorCli('fathom')
  let recording = 1000

  // A fake of its own for each test: what one test adds never shows in another's sync.
  beforeEach(async () => {
    fake = await startFathomFake()
  })
  afterEach(async () => {
    await fake.close()
  })
  afterAll(async () => {
    await owner.close()
  })

  const stored = (tenantId: string) =>
    withTenant(owner.db, tenantId, async (tx) => ({
      activities: await tx
        .select()
        .from(activities)
        .where(and(eq(activities.tenantId, tenantId), eq(activities.source, 'fathom')))
        .orderBy(asc(activities.externalId)),
      meetings: await tx
        .select()
        .from(fathomMeetings)
        .where(eq(fathomMeetings.tenantId, tenantId))
        .orderBy(asc(fathomMeetings.recordingId)),
      quarantined: await tx.select().from(quarantine).where(eq(quarantine.tenantId, tenantId)),
    }))

  it('refuses a wrong API key in one error line and stores nothing', async () => {
    const tenantId = await newTenant()
    const result = await connect(tenantId, { apiKey: 'fathom_wrong_key_000', baseUrl: fake.url })
    expect(result.code).toBe(1)
    expect(stderrLines(result).filter((l) => l.startsWith('error:'))).toEqual([
      expect.stringMatching(/^error: Fathom /) as unknown,
    ])
    expect(result.stderr).not.toContain('fathom_wrong_key_000')
    const rows = await withTenant(owner.db, tenantId, (tx) =>
      tx.select().from(connectors).where(eq(connectors.tenantId, tenantId)),
    )
    expect(rows).toEqual([])
  })

  it('syncs every meeting page by page with its content, quarantines a malformed one, then reads only what is new', async () => {
    const tenantId = await newTenant()
    const base = Date.now() - 30 * 24 * 60 * MIN
    const added = Array.from({ length: 12 }, (_, i) =>
      fake.addMeeting({
        recording_id: ++recording,
        created_at: new Date(base + i * 60 * MIN).toISOString(),
      }),
    )
    const malformedAt = new Date(base + 13 * 60 * MIN).toISOString()
    fake.addRawMeeting({ title: 'no id', created_at: malformedAt })
    expect((await connect(tenantId, { apiKey: fake.apiKey, baseUrl: fake.url })).code).toBe(0)
    const before = fake.requests.length
    fake.throttleNext(2, 1)
    const { summary: first, output } = await syncTraced(tenantId)
    expect(output).toContain('"msg":"page committed"')
    expect(output).not.toContain(fake.apiKey)
    expect(first).toMatchObject({ status: 'succeeded', created: 12, errors: 1 })
    const pages = fake.requests.slice(before).filter((r) => r.status === 200)
    expect(fake.requests.slice(before).filter((r) => r.status === 429)).toHaveLength(2)
    // Every page asks for the content again: a cursor alone would drop it.
    expect(pages.length).toBeGreaterThanOrEqual(2)
    for (const page of pages) {
      expect(page.query).toMatchObject({
        include_transcript: 'true',
        include_summary: 'true',
        include_action_items: 'true',
      })
    }
    expect(pages[1]!.query['cursor']).toBeTruthy()

    const { activities: acts, meetings, quarantined } = await stored(tenantId)
    expect(acts).toHaveLength(12)
    const one = added[0]!
    const activity = acts.find((a) => a.externalId === `fathom_${one.recording_id}`)
    expect(activity).toMatchObject({
      type: 'meeting_recorded',
      channel: 'video',
      personExternalId: 'john.smith@client.com',
      properties: {
        fathomMeetingId: one.recording_id,
        participantCount: 2,
        durationSeconds: 45 * 60,
        title: one.title,
      },
    })
    expect(activity!.occurredAt.toISOString()).toBe(one.recording_start_time)
    expect(meetings).toHaveLength(12)
    expect(meetings[0]).toMatchObject({
      recordingId: one.recording_id,
      title: one.title,
      summary: '## Summary\nThey met.',
      transcript: one.transcript,
      actionItems: one.action_items,
      invitees: one.calendar_invitees,
    })
    expect(quarantined).toHaveLength(1)
    expect(quarantined[0]!.reason).toMatch(/^externalId: /)

    const newest = fake.addMeeting({
      recording_id: ++recording,
      created_at: new Date().toISOString(),
    })
    const later = await sync(tenantId)
    expect(later).toMatchObject({ status: 'succeeded', created: 1, updated: 0 })
    const lastCall = fake.requests.filter((r) => r.status === 200).at(-1)!
    // It looked back 10 minutes from the newest meeting it had seen (the malformed one).
    expect(Date.parse(lastCall.query['created_after']!)).toBe(Date.parse(malformedAt) - 10 * MIN)
    expect((await stored(tenantId)).meetings.map((m) => m.recordingId)).toContain(
      newest.recording_id,
    )
  })

  it('says whether it is healthy: healthy, then down when Fathom refuses the key', async () => {
    const tenantId = await newTenant()
    expect((await connect(tenantId, { apiKey: fake.apiKey, baseUrl: fake.url })).code).toBe(0)
    const healthy = await runCli(['health', 'fathom', '--tenant', tenantId, '--json'], env())
    expect(JSON.parse(healthy.stdout)).toMatchObject({ status: 'healthy' })
    const other = await startFathomFake()
    const second = await newTenant()
    expect((await connect(second, { apiKey: other.apiKey, baseUrl: other.url })).code).toBe(0)
    await other.close()
    const down = await runCli(['health', 'fathom', '--tenant', second, '--json'], env())
    expect(JSON.parse(down.stdout)).toMatchObject({ status: 'down' })
    expect(down.stdout).not.toContain(other.apiKey)
  })

  it('takes signed webhooks once each (three deliveries, one meeting), and refuses bad or stale signatures', async () => {
    const tenantId = await newTenant()
    expect(
      (
        await connect(tenantId, {
          apiKey: fake.apiKey,
          baseUrl: fake.url,
          webhookSecret: fake.webhookSecret,
        })
      ).code,
    ).toBe(0)
    const server = await serveWebhooks(env())
    try {
      const origin = server.origin
      const meeting = {
        ...fake.addMeeting({ recording_id: ++recording, created_at: new Date().toISOString() }),
      }
      const delivery = fake.signedDelivery(meeting, { id: 'msg_2x2zwLOcWaRTzsLK8KtbQt1FTk9' })
      const post = (d: { headers: Record<string, string>; body: string }) =>
        fetch(`${origin}/webhooks/fathom/${tenantId}`, {
          method: 'POST',
          headers: d.headers,
          body: d.body,
        })
      for (let i = 0; i < 3; i++) expect((await post(delivery)).status).toBeLessThan(300)

      const wrong = fake.signedDelivery(
        { ...meeting, recording_id: ++recording },
        { secret: `whsec_${Buffer.from('other').toString('base64')}` },
      )
      expect((await post(wrong)).status).toBe(401)
      const stale = fake.signedDelivery(
        { ...meeting, recording_id: ++recording },
        {
          timestamp: Math.floor(Date.now() / 1000) - 600,
        },
      )
      expect((await post(stale)).status).toBe(401)

      const landed = await waitFor(
        async () => {
          const now = await stored(tenantId)
          return now.activities.length > 0 && now.meetings.length > 0 ? now : undefined
        },
        { timeoutMs: 20_000, what: 'the webhook meeting to land' },
      )
      expect(landed.activities.map((a) => a.externalId)).toEqual([`fathom_${meeting.recording_id}`])
      expect(landed.meetings.map((m) => m.recordingId)).toEqual([meeting.recording_id])
      expect(landed.meetings[0]!.transcript).toEqual(meeting.transcript)
      const inbox = await withTenant(owner.db, tenantId, (tx) =>
        tx.select().from(webhookInbox).where(eq(webhookInbox.tenantId, tenantId)),
      )
      expect(inbox.map((r) => r.eventId)).toEqual(['msg_2x2zwLOcWaRTzsLK8KtbQt1FTk9'])

      // A backfill of the same meeting later makes no second activity.
      const synced = await sync(tenantId)
      expect(synced).toMatchObject({ status: 'succeeded' })
      const after = await stored(tenantId)
      expect(
        after.activities.filter((a) => a.externalId === `fathom_${meeting.recording_id}`),
      ).toHaveLength(1)
    } finally {
      const result = await server.stop()
      expect(result.stdout + result.stderr).not.toContain(fake.webhookSecret)
      expect(result.stdout + result.stderr).not.toContain(fake.apiKey)
    }
  })
})
