import { describe, expect, it } from 'vitest'
import {
  defaultMappings,
  eventChannel,
  taskChannel,
  toSourceRecord,
} from '../../src-agent/connectors/salesforce/map.js'
import { prepareRecords } from '../../src-agent/pipeline/prepare.js'

describe('Salesforce records to source records', () => {
  it('pre-shapes activities so one mapping fits Opportunities, Tasks and Events', () => {
    const records = [
      toSourceRecord('Opportunity', {
        attributes: { type: 'Opportunity', url: '/x' },
        Id: '006A',
        AccountId: '001A',
        StageName: 'Closed Won',
        Amount: 5000,
        CloseDate: '2025-06-03',
        IsClosed: true,
        IsWon: true,
        CreatedDate: '2025-01-02T03:04:05.000+0000',
        SystemModstamp: '2025-02-01T00:00:00.000+0000',
        IsDeleted: false,
      }),
      toSourceRecord('Task', {
        Id: '00TA',
        WhoId: '003A',
        AccountId: '001A',
        Subject: ' Call back ',
        Status: 'Completed',
        TaskSubtype: 'Call',
        Type: 'Email',
        ActivityDate: '2025-05-01',
        CompletedDateTime: null,
        CreatedDate: '2025-04-01T00:00:00.000+0000',
        SystemModstamp: '2025-05-01T10:00:00.000+0000',
      }),
      toSourceRecord('Event', {
        Id: '00UA',
        WhoId: '00QA',
        Type: null,
        StartDateTime: '2025-05-02T15:00:00.000Z',
        SystemModstamp: '2025-05-01T10:00:00.000Z',
      }),
    ]
    const batch = prepareRecords(records, (e) => defaultMappings(e)).activity
    expect(batch.rejects).toEqual([])
    expect(batch.upserts.map((u) => u.record)).toEqual([
      {
        externalId: '006A',
        type: 'opportunity',
        occurredAt: new Date('2025-01-02T03:04:05.000Z'),
        accountExternalId: '001A',
        properties: {
          stage: 'Closed Won',
          amount: 5000,
          closeDate: '2025-06-03',
          isClosed: true,
          isWon: true,
          accountExternalId: '001A',
        },
      },
      {
        externalId: '00TA',
        type: 'task',
        channel: 'call',
        occurredAt: new Date('2025-05-01T00:00:00.000Z'),
        personExternalId: '003A',
        accountExternalId: '001A',
        properties: { subject: 'Call back', status: 'Completed', accountExternalId: '001A' },
      },
      {
        externalId: '00UA',
        type: 'event',
        channel: 'meeting',
        occurredAt: new Date('2025-05-02T15:00:00.000Z'),
        personExternalId: '00QA',
      },
    ])
    expect(records[0]?.data).not.toHaveProperty('attributes')
    expect(records[0]).toMatchObject({
      entityType: 'activity',
      modifiedAt: '2025-02-01T00:00:00.000Z',
    })
  })

  it('maps Contacts and Leads to people, a converted Lead to its account', () => {
    const lead = toSourceRecord('Lead', {
      Id: '00QA',
      Email: ' Ada@Example.com ',
      LastName: 'L',
      ConvertedAccountId: '001B',
    })
    const contact = toSourceRecord('Contact', {
      Id: '003A',
      Email: 'c@example.com',
      AccountId: '001A',
    })
    const batch = prepareRecords([lead, contact], (e) => defaultMappings(e)).person
    expect(batch.upserts.map((u) => u.record)).toEqual([
      { externalId: '00QA', email: 'ada@example.com', lastName: 'L', accountExternalId: '001B' },
      { externalId: '003A', email: 'c@example.com', accountExternalId: '001A' },
    ])
  })

  it('maps Accounts with a trimmed required name and a bare domain', () => {
    const account = toSourceRecord('Account', {
      Id: '001A',
      Name: '  Acme  ',
      Website: 'https://WWW.Acme.com/pricing',
      Industry: 'Retail',
      NumberOfEmployees: 40,
      AnnualRevenue: 1.5e6,
    })
    const nameless = toSourceRecord('Account', { Id: '001B', Name: '   ' })
    const batch = prepareRecords([account, nameless], (e) => defaultMappings(e)).account
    expect(batch.upserts[0]?.record).toEqual({
      externalId: '001A',
      name: 'Acme',
      domain: 'acme.com',
      industry: 'Retail',
      employeeCount: 40,
      annualRevenue: 1.5e6,
    })
    expect(batch.rejects.map((r) => [r.externalId, r.field])).toEqual([['001B', 'name']])
  })

  it('reads REST and Bulk datetimes alike, and no day that does not exist', () => {
    const stamp = (SystemModstamp: string) =>
      toSourceRecord('Contact', { Id: '003A', SystemModstamp }).modifiedAt
    expect(stamp('2025-03-01T17:01:30.000+0000')).toBe('2025-03-01T17:01:30.000Z')
    expect(stamp('2025-03-01T17:01:30.000Z')).toBe('2025-03-01T17:01:30.000Z')
    expect(stamp('2024-02-29T23:59:59.999Z')).toBe('2024-02-29T23:59:59.999Z')
    expect(stamp('2025-02-29T10:00:00.000Z')).toBeUndefined()
    expect(stamp('2025-04-31T10:00:00.000Z')).toBeUndefined()
    // ISO-8601's end of a day is the next day's start.
    expect(stamp('2025-03-01T24:00:00.000Z')).toBe('2025-03-02T00:00:00.000Z')
    expect(stamp('2025-13-01T10:00:00.000Z')).toBeUndefined()
    const event = toSourceRecord('Event', { Id: '00UA', StartDateTime: '2025-05-02T15:00:00.000Z' })
    expect(event.data.occurredAt).toBe('2025-05-02T15:00:00.000Z')
  })

  it('turns IsDeleted records from queryAll into deletions', () => {
    const deleted = toSourceRecord('Contact', {
      Id: '003Z',
      IsDeleted: true,
      SystemModstamp: '2025-05-01T10:00:00.000+0000',
    })
    expect(deleted).toMatchObject({ entityType: 'person', deleted: true })
    expect(prepareRecords([deleted], (e) => defaultMappings(e)).person.deletions).toEqual(['003Z'])
  })

  it('derives the channel from the task subtype, then the type', () => {
    expect(taskChannel('Email', null)).toBe('email')
    expect(taskChannel('ListEmail', null)).toBe('email')
    expect(taskChannel('Call', 'Meeting')).toBe('call')
    expect(taskChannel('Task', 'Meeting')).toBe('meeting')
    expect(taskChannel('Task', 'Other')).toBeUndefined()
    expect(eventChannel('Email')).toBe('email')
    expect(eventChannel(undefined)).toBe('meeting')
  })
})
