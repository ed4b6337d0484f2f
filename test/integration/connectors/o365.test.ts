import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { and, asc, eq } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { activities, auditLog, quarantine } from '../../../db/schema/index.js'
import { withTenant } from '../../../db/tenant.js'
import { startMicrosoftFake, type MicrosoftFake } from '../../fakes/microsoft.js'
import { TEST_KEY_HEX } from '../../helpers/agent.js'
import { runCli } from '../../helpers/cli.js'
import { databaseUrl, ownerDb, uniqueTenantId } from '../../helpers/db.js'
import { testCertificate } from '../../helpers/tls.js'

const BODY = 'CONFIDENTIAL BODY TEXT'
const hours = (h: number) => new Date(Date.now() + h * 3_600_000)
/** A Graph dateTimeTimeZone in UTC, as Graph writes it (no offset, seven decimals). */
const graphTime = (d: Date) => ({
  dateTime: d
    .toISOString()
    .replace('Z', '')
    .replace(/\.(\d{3})$/, '.$10000'),
  timeZone: 'UTC',
})
const person = (address: string) => ({ emailAddress: { name: address, address } })

/** The directory every test reads: two mailboxes with meetings and mail, one user without a mailbox. */
function seedDirectory(target: MicrosoftFake, meetingStart: Date): void {
  target.addUser('ann@contoso.com')
  target.addUser('bob@contoso.com')
  target.addUser('kiosk@contoso.com', { mailbox: false })
  target.putEvent('ann@contoso.com', {
    id: 'ev-1',
    subject: 'QBR',
    start: graphTime(meetingStart),
    end: graphTime(new Date(meetingStart.getTime() + 3_600_000)),
    organizer: person('ann@contoso.com'),
    attendees: [
      { type: 'required', ...person('John.Smith@Client.com') },
      person('ann@contoso.com'),
    ],
    isCancelled: false,
    iCalUId: 'ical-1',
    lastModifiedDateTime: hours(-60).toISOString(),
    body: { contentType: 'html', content: BODY },
    bodyPreview: BODY,
  })
  target.putEvent('ann@contoso.com', {
    id: 'ev-2',
    subject: 'Lookalike',
    start: graphTime(hours(-20)),
    end: graphTime(hours(-19)),
    organizer: person('ann@contoso.com'),
    attendees: [person('eve@notclient.com')],
    body: { contentType: 'html', content: BODY },
  })
  target.putEvent('bob@contoso.com', {
    id: 'ev-3',
    subject: 'Demo',
    start: graphTime(hours(24)),
    end: graphTime(hours(25)),
    organizer: person('bob@contoso.com'),
    attendees: [person('mia@client.com')],
    body: { contentType: 'html', content: BODY },
  })
  target.putMessage('ann@contoso.com', 'inbox', {
    id: 'm-1',
    subject: 'Pricing question',
    from: person('John.Smith@client.com'),
    toRecipients: [person('ann@contoso.com')],
    receivedDateTime: hours(-5).toISOString(),
    sentDateTime: hours(-5).toISOString(),
    conversationId: 'conv-1',
    hasAttachments: false,
    body: { contentType: 'html', content: BODY },
    bodyPreview: BODY,
    uniqueBody: { contentType: 'html', content: BODY },
  })
  target.putMessage('ann@contoso.com', 'sentitems', {
    id: 'm-2',
    subject: 'Re: Pricing question',
    from: person('ann@contoso.com'),
    toRecipients: [person('john.smith@client.com')],
    ccRecipients: [person('someone@notclient.com')],
    receivedDateTime: hours(-4).toISOString(),
    sentDateTime: hours(-4).toISOString(),
    conversationId: 'conv-1',
    hasAttachments: true,
    body: { contentType: 'html', content: BODY },
  })
}

describe('Microsoft 365 (o365): calendar and mail metadata per mailbox', () => {
  let fake: MicrosoftFake
  let dir: string
  const owner = ownerDb()
  const env = (extra: Record<string, string> = {}) => ({
    DATABASE_URL: databaseUrl(),
    CONNECTOR_ENCRYPTION_KEY: TEST_KEY_HEX,
    NODE_EXTRA_CA_CERTS: testCertificate().caFile,
    ...extra,
  })
  const meetingStart = hours(-50)

  beforeAll(async () => {
    fake = await startMicrosoftFake()
    fake.grantConsent()
    dir = await mkdtemp(path.join(os.tmpdir(), 'gtm-o365-'))
    seedDirectory(fake, meetingStart)
  })
  afterAll(async () => {
    await fake.close()
    await rm(dir, { recursive: true, force: true })
    await owner.close()
  })

  const newTenant = async (): Promise<string> => {
    const tenantId = uniqueTenantId('o365')
    const created = await runCli(['tenants', 'create', tenantId, '--name', 'Contoso'], env())
    expect(created.code, created.stderr).toBe(0)
    return tenantId
  }
  const connect = async (tenantId: string, domains: string[], target: MicrosoftFake = fake) => {
    const file = path.join(dir, `${tenantId}-${domains.length}.json`)
    await writeFile(
      file,
      JSON.stringify({
        tenantId: target.tenantId,
        clientId: target.clientId,
        clientSecret: target.clientSecret,
        authority: target.url,
        graphBaseUrl: `${target.url}/v1.0`,
        allowedExternalDomains: domains,
      }),
    )
    const result = await runCli(['connect', 'o365', '--tenant', tenantId, '--config', file], env())
    expect(result.code, result.stderr).toBe(0)
  }
  const sync = (tenantId: string, extra: Record<string, string> = {}) =>
    runCli(['sync', 'o365', '--tenant', tenantId, '--json'], env(extra))
  const rows = (tenantId: string) =>
    withTenant(owner.db, tenantId, (tx) =>
      tx
        .select()
        .from(activities)
        .where(and(eq(activities.tenantId, tenantId), eq(activities.source, 'o365')))
        .orderBy(asc(activities.externalId)),
    )
  const accept = async (tenantId: string) => {
    const accepted = await runCli(['o365', 'accept-dpa', '--tenant', tenantId], env())
    expect(accepted.code, accepted.stderr).toBe(0)
  }

  it('reads no mailbox before the data-processing terms are accepted, then nothing while no domain is allowed', async () => {
    const tenantId = await newTenant()
    await connect(tenantId, [])
    const before = fake.graphRequests.length
    const refused = await sync(tenantId)
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain(
      `error: Microsoft 365 reads nothing until an admin of tenant "${tenantId}" accepts the Microsoft 365 data-processing terms: gtm-agent o365 accept-dpa --tenant ${tenantId}`,
    )
    expect(fake.graphRequests.slice(before)).toEqual([])

    await accept(tenantId)
    const audit = await withTenant(owner.db, tenantId, (tx) =>
      tx
        .select()
        .from(auditLog)
        .where(and(eq(auditLog.tenantId, tenantId), eq(auditLog.action, 'agreement.accept'))),
    )
    expect(audit).toHaveLength(1)
    const empty = await sync(tenantId)
    expect(empty.code, empty.stderr).toBe(0)
    expect(JSON.parse(empty.stdout)).toMatchObject({ status: 'succeeded', created: 0 })
    expect(await rows(tenantId)).toEqual([])
  })

  it('turns only allowlisted participants into activities, metadata only, right in any time zone', async () => {
    const tenantId = await newTenant()
    await connect(tenantId, ['client.com'])
    await accept(tenantId)
    const before = fake.graphRequests.length
    const result = await sync(tenantId, { TZ: 'America/New_York' })
    expect(result.code, result.stderr).toBe(0)
    expect(JSON.parse(result.stdout)).toMatchObject({ status: 'succeeded', errors: 0 })

    const stored = await rows(tenantId)
    expect(stored.map((r) => [r.externalId, r.type, r.channel, r.personExternalId])).toEqual([
      ['ann@contoso.com:event:ev-1', 'meeting', 'meetings', 'john.smith@client.com'],
      ['ann@contoso.com:message:m-1', 'email_received', 'email', 'john.smith@client.com'],
      ['ann@contoso.com:message:m-2', 'email_sent', 'email', 'john.smith@client.com'],
      ['bob@contoso.com:event:ev-3', 'meeting', 'meetings', 'mia@client.com'],
    ])
    // 16:00 UTC is 16:00 UTC, whatever zone the agent runs in.
    expect(stored[0]!.occurredAt.toISOString()).toBe(meetingStart.toISOString())
    expect(stored[0]!.properties).toMatchObject({
      subject: 'QBR',
      attendeeCount: 2,
      mailbox: 'ann@contoso.com',
    })

    // Privacy: never a body asked for, never one stored.
    const mailCalls = fake.graphRequests
      .slice(before)
      .filter((r) => r.path.includes('/messages/delta'))
    expect(mailCalls.length).toBeGreaterThan(0)
    // A walk's first request names its fields; the links Graph gives back carry them on.
    for (const call of mailCalls) {
      if (call.query['$skiptoken'] || call.query['$deltatoken']) continue
      expect(call.query['$select']?.split(',')).toEqual(
        expect.arrayContaining(['id', 'subject', 'from', 'receivedDateTime', 'sentDateTime']),
      )
      expect(call.query['$select']).not.toMatch(/body|bodyPreview|uniqueBody/i)
    }
    expect(mailCalls.some((c) => c.query['$select'])).toBe(true)
    const rejected = await withTenant(owner.db, tenantId, (tx) =>
      tx.select().from(quarantine).where(eq(quarantine.tenantId, tenantId)),
    )
    expect(JSON.stringify([stored, rejected])).not.toContain(BODY)
    // The user without a mailbox was skipped, not fatal.
    expect(
      fake.graphRequests.slice(before).some((r) => r.path.includes('kiosk') && r.status === 404),
    ).toBe(true)

    // Same rows from an agent in UTC.
    const other = await newTenant()
    await connect(other, ['client.com'])
    await accept(other)
    expect((await sync(other, { TZ: 'UTC' })).code).toBe(0)
    expect((await rows(other)).map((r) => [r.externalId, r.occurredAt.toISOString()])).toEqual(
      stored.map((r) => [r.externalId, r.occurredAt.toISOString()]),
    )
  })

  it('quarantines a malformed item while the rest lands, and says whether it is healthy', async () => {
    // A directory of its own, so the other tests' mailboxes never hold this bad item.
    const own = await startMicrosoftFake()
    own.grantConsent()
    own.addUser('cara@contoso.com')
    own.putMessage('cara@contoso.com', 'inbox', {
      id: 'm-bad',
      subject: 'No date',
      from: person('x@client.com'),
      receivedDateTime: 'not a date',
    })
    own.putMessage('cara@contoso.com', 'inbox', {
      id: 'm-ok',
      subject: 'Dated',
      from: person('y@client.com'),
      receivedDateTime: hours(-1).toISOString(),
    })
    const tenantId = await newTenant()
    await connect(tenantId, ['client.com'], own)
    await accept(tenantId)
    const result = await runCli(
      [
        'sync',
        'o365',
        '--tenant',
        tenantId,
        '--json',
        '--stream',
        'mail',
        '--partition',
        'cara@contoso.com',
      ],
      env(),
    )
    expect(result.code, result.stderr).toBe(0)
    expect(JSON.parse(result.stdout)).toMatchObject({ status: 'succeeded', created: 1, errors: 1 })
    const rejected = await withTenant(owner.db, tenantId, (tx) =>
      tx.select().from(quarantine).where(eq(quarantine.tenantId, tenantId)),
    )
    expect(rejected.map((r) => [r.externalId, r.reason.split(':')[0]])).toEqual([
      ['cara@contoso.com:message:m-bad', 'occurredAt'],
    ])
    const healthy = await runCli(['health', 'o365', '--tenant', tenantId, '--json'], env())
    expect(JSON.parse(healthy.stdout)).toMatchObject({ status: 'healthy' })
    await own.close()
    const down = await runCli(['health', 'o365', '--tenant', tenantId, '--json'], env())
    expect(JSON.parse(down.stdout)).toMatchObject({ status: 'down' })
  })

  it('reads Graph page by page, waits out 429s as Graph asks, and logs no secret even at trace level', async () => {
    const own = await startMicrosoftFake()
    own.grantConsent()
    seedDirectory(own, meetingStart)
    const tenantId = await newTenant()
    await connect(tenantId, ['client.com'], own)
    await accept(tenantId)
    own.throttleGraph(2)
    const result = await runCli(
      ['sync', 'o365', '--tenant', tenantId, '--json', '--page-size', '1'],
      env({ LOG_LEVEL: 'trace' }),
    )
    expect(result.code, result.stderr).toBe(0)
    expect(JSON.parse(result.stdout)).toMatchObject({ status: 'succeeded', created: 4, errors: 0 })
    expect(own.graphRequests.filter((r) => r.status === 429)).toHaveLength(2)
    // One item a page: Ann's calendar (two events) took two pages, the second by its nextLink.
    const annCalendar = own.graphRequests.filter(
      (r) => r.path.includes('ann') && r.path.includes('calendarView') && r.status === 200,
    )
    expect(annCalendar.length).toBeGreaterThanOrEqual(2)
    expect(annCalendar.some((r) => r.query['$skiptoken'])).toBe(true)
    expect(result.stderr.length).toBeGreaterThan(0)
    expect(result.stdout + result.stderr).not.toContain(own.clientSecret)
    await own.close()
  })

  it('is listed with the four other connectors, each with its streams', async () => {
    const listed = await runCli(['connectors', '--json'], env())
    expect(listed.code, listed.stderr).toBe(0)
    const streams = Object.fromEntries(
      (
        JSON.parse(listed.stdout) as Array<{
          id: string
          streams: Array<{ id: string; partitioned: boolean }>
        }>
      ).map((c) => [c.id, c.streams.map((s) => `${s.id}${s.partitioned ? ' (per mailbox)' : ''}`)]),
    )
    expect(streams).toMatchObject({
      salesforce: ['accounts', 'contacts', 'leads', 'opportunities', 'tasks', 'events'],
      customerio: ['email_activity', 'customers'],
      delivrai: ['intent_signals', 'member_engagement'],
      o365: ['calendar (per mailbox)', 'mail (per mailbox)'],
      fathom: ['meetings'],
    })
  })

  it('follows changes by delta: a removed meeting is deleted, a moved one moves, and an expired token restarts that mailbox only', async () => {
    // A directory of its own: this test changes it.
    const own = await startMicrosoftFake()
    own.grantConsent()
    seedDirectory(own, meetingStart)
    const tenantId = await newTenant()
    await connect(tenantId, ['client.com'], own)
    await accept(tenantId)
    expect((await sync(tenantId)).code).toBe(0)

    const moved = hours(-30)
    own.putEvent('bob@contoso.com', {
      id: 'ev-3',
      subject: 'Demo (moved)',
      start: graphTime(moved),
      end: graphTime(new Date(moved.getTime() + 3_600_000)),
      organizer: person('bob@contoso.com'),
      attendees: [person('mia@client.com')],
      body: { contentType: 'html', content: BODY },
    })
    own.removeEvent('ann@contoso.com', 'ev-1')
    own.expireDeltaTokens('bob@contoso.com')
    const before = own.graphRequests.length
    const result = await sync(tenantId)
    expect(result.code, result.stderr).toBe(0)

    const stored = await rows(tenantId)
    const byId = new Map(stored.map((r) => [r.externalId, r]))
    expect(byId.get('ann@contoso.com:event:ev-1')?.deletedAt).not.toBeNull()
    expect(byId.get('bob@contoso.com:event:ev-3')?.occurredAt.toISOString()).toBe(
      moved.toISOString(),
    )
    const calls = own.graphRequests.slice(before).filter((r) => r.path.includes('calendarView'))
    // Bob's token was refused (410) and his calendar read again from the start; Ann's went on.
    expect(calls.filter((c) => c.path.includes('bob') && c.status === 410)).toHaveLength(1)
    expect(
      calls.some(
        (c) => c.path.includes('bob') && c.query['startDateTime'] !== undefined && c.status === 200,
      ),
    ).toBe(true)
    expect(
      calls
        .filter((c) => c.path.includes('ann'))
        .every((c) => c.query['$deltatoken'] !== undefined),
    ).toBe(true)
    await own.close()
  })
})
