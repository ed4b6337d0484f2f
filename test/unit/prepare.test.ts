import { describe, it, expect } from 'vitest'
import { ConfigError } from '../../shared/errors.js'
import type { EntityType, FieldMapping, SourceRecord } from '../../shared/schemas.js'
import { prepareBatch, prepareRecords, stripSecrets } from '../../src-agent/pipeline/prepare.js'

const m = (
  sourceField: string,
  targetField: string,
  extra: Partial<FieldMapping> = {},
): FieldMapping => ({ sourceField, targetField, transform: 'none', ...extra })

const accountMappings = [
  m('Id', 'externalId'),
  m('Name', 'name', { transform: 'trim' }),
  m('Website', 'domain'),
  m('NumberOfEmployees', 'employeeCount'),
]
const personMappings = [
  m('Id', 'externalId'),
  m('Email', 'email'),
  m('Account.Id', 'accountExternalId'),
]
const activityMappings = [m('id', 'externalId'), m('kind', 'type'), m('at', 'occurredAt')]

const account = (
  data: Record<string, unknown>,
  extra: Partial<SourceRecord> = {},
): SourceRecord => ({
  entityType: 'account',
  data,
  ...extra,
})

describe('prepareBatch', () => {
  it('maps, coerces and validates records into upserts with their raw payload', () => {
    const data = {
      Id: 'a1',
      Name: ' Acme ',
      Website: 'https://www.Acme.com/',
      NumberOfEmployees: '1,200',
    }
    const batch = prepareBatch({
      entityType: 'account',
      records: [account(data)],
      mappings: accountMappings,
    })
    expect(batch).toEqual({
      upserts: [
        {
          record: { externalId: 'a1', name: 'Acme', domain: 'acme.com', employeeCount: 1200 },
          raw: data,
        },
      ],
      deletions: [],
      rejects: [],
    })
  })

  it('counts rejects with reasons naming the field and keeps going', () => {
    const records = [
      account({ Id: 'a1', Name: 'Acme' }),
      account({ Id: 'a2' }),
      account({ Id: 'a3', Name: 'Beta', NumberOfEmployees: 'abc' }),
      account({ Name: 'No id' }),
      account({ Id: 'a5', Name: 'Gamma', Website: 'N/A' }),
      account({ Id: 'a6', Name: 'Delta' }),
    ]
    const batch = prepareBatch({ entityType: 'account', records, mappings: accountMappings })
    expect(batch.upserts.map((u) => u.record.externalId)).toEqual(['a1', 'a6'])
    expect(
      batch.rejects.map(({ externalId, field, reason }) => ({ externalId, field, reason })),
    ).toEqual([
      {
        externalId: 'a2',
        field: 'name',
        reason: 'missing required field "name" (source field "Name" is empty)',
      },
      {
        externalId: 'a3',
        field: 'employeeCount',
        reason: 'field "employeeCount" is not a number: "abc"',
      },
      {
        externalId: null,
        field: 'externalId',
        reason: 'missing required field "externalId" (source field "Id" is empty)',
      },
      {
        externalId: 'a5',
        field: 'domain',
        reason: 'field "domain" is not a domain, URL or email address: "N/A"',
      },
    ])
    expect(batch.rejects[0]?.raw).toEqual({ Id: 'a2' })
  })

  it('rejects a required mapping whose source value is missing', () => {
    const mappings = [...personMappings.slice(0, 1), m('Email', 'email', { required: true })]
    const batch = prepareBatch({
      entityType: 'person',
      records: [
        { entityType: 'person', data: { Id: 'p1', Email: 'A@B.co' } },
        { entityType: 'person', data: { Id: 'p2' } },
      ],
      mappings,
    })
    expect(batch.upserts.map((u) => u.record)).toEqual([{ externalId: 'p1', email: 'a@b.co' }])
    expect(batch.rejects).toHaveLength(1)
    expect(batch.rejects[0]).toMatchObject({ externalId: 'p2', field: 'email' })
  })

  it('rejects records of another entity type', () => {
    const batch = prepareBatch({
      entityType: 'account',
      records: [{ entityType: 'person', data: { Id: 'p1' } }, account({ Id: 'a1', Name: 'Acme' })],
      mappings: accountMappings,
    })
    expect(batch.upserts).toHaveLength(1)
    expect(batch.rejects).toEqual([
      {
        externalId: null,
        field: 'entityType',
        reason: 'record is a person, but this batch holds account records',
        raw: { Id: 'p1' },
      },
    ])
  })

  it('throws mapping_invalid before reading records when the mappings are invalid', () => {
    expect(() =>
      prepareBatch({ entityType: 'account', records: [], mappings: [m('Id', 'externalId')] }),
    ).toThrow(ConfigError)
    expect(() =>
      prepareBatch({ entityType: 'account', records: [], mappings: [m('Id', 'externalId')] }),
    ).toThrow('required field "name"')
  })

  describe('dedupe', () => {
    it('keeps the newest duplicate by modifiedAt', () => {
      const batch = prepareBatch({
        entityType: 'account',
        records: [
          account({ Id: 'a1', Name: 'New' }, { modifiedAt: '2024-02-01T00:00:00Z' }),
          account({ Id: 'a1', Name: 'Old' }, { modifiedAt: new Date('2024-01-01T00:00:00Z') }),
          account({ Id: 'a2', Name: 'Other' }, { modifiedAt: 1_700_000_000 }),
        ],
        mappings: accountMappings,
      })
      expect(batch.upserts.map((u) => u.record)).toEqual([
        { externalId: 'a1', name: 'New' },
        { externalId: 'a2', name: 'Other' },
      ])
    })

    it('keeps the later duplicate on a tie or without modifiedAt', () => {
      const tie = prepareBatch({
        entityType: 'account',
        records: [
          account({ Id: 'a1', Name: 'First' }, { modifiedAt: 1_704_067_200 }),
          account({ Id: 'a1', Name: 'Second' }, { modifiedAt: '2024-01-01T00:00:00Z' }),
        ],
        mappings: accountMappings,
      })
      expect(tie.upserts.map((u) => u.record.name)).toEqual(['Second'])
      const absent = prepareBatch({
        entityType: 'account',
        records: [account({ Id: 'a1', Name: 'First' }), account({ Id: 'a1', Name: 'Second' })],
        mappings: accountMappings,
      })
      expect(absent.upserts.map((u) => u.record.name)).toEqual(['Second'])
    })

    it('dedupes on the coerced externalId', () => {
      const batch = prepareBatch({
        entityType: 'account',
        records: [account({ Id: 7, Name: 'Number' }), account({ Id: '7', Name: 'Text' })],
        mappings: accountMappings,
      })
      expect(batch.upserts.map((u) => u.record)).toEqual([{ externalId: '7', name: 'Text' }])
    })
  })

  describe('deletions', () => {
    it('needs only the externalId, mapped with its transform', () => {
      const batch = prepareBatch({
        entityType: 'account',
        records: [
          account({ Id: ' A9 ' }, { deleted: true }),
          account({ Id: 12 }, { deleted: true }),
          account({ Id: 'a1', Name: 'Kept' }),
        ],
        mappings: [m('Id', 'externalId', { transform: 'lowercase' }), m('Name', 'name')],
      })
      expect(batch.deletions).toEqual(['a9', '12'])
      expect(batch.upserts.map((u) => u.record.externalId)).toEqual(['a1'])
      expect(batch.rejects).toEqual([])
    })

    it('rejects a deleted record without an externalId', () => {
      const batch = prepareBatch({
        entityType: 'account',
        records: [account({ Name: 'Gone', token: 'x' }, { deleted: true })],
        mappings: accountMappings,
      })
      expect(batch.deletions).toEqual([])
      expect(batch.rejects).toEqual([
        {
          externalId: null,
          field: 'externalId',
          reason: 'deleted record has no external id (source field "Id")',
          raw: { Name: 'Gone' },
        },
      ])
    })

    it('lets the newest of a deletion and an upsert of one id win', () => {
      const deletedLater = prepareBatch({
        entityType: 'account',
        records: [
          account({ Id: 'a1', Name: 'Acme' }, { modifiedAt: '2024-01-01T00:00:00Z' }),
          account({ Id: 'a1' }, { deleted: true, modifiedAt: '2024-01-02T00:00:00Z' }),
        ],
        mappings: accountMappings,
      })
      expect(deletedLater.upserts).toEqual([])
      expect(deletedLater.deletions).toEqual(['a1'])

      const updatedLater = prepareBatch({
        entityType: 'account',
        records: [
          account({ Id: 'a1', Name: 'Acme' }, { modifiedAt: '2024-01-03T00:00:00Z' }),
          account({ Id: 'a1' }, { deleted: true, modifiedAt: '2024-01-02T00:00:00Z' }),
        ],
        mappings: accountMappings,
      })
      expect(updatedLater.upserts.map((u) => u.record.name)).toEqual(['Acme'])
      expect(updatedLater.deletions).toEqual([])

      const undated = prepareBatch({
        entityType: 'account',
        records: [account({ Id: 'a1' }, { deleted: true }), account({ Id: 'a1', Name: 'Back' })],
        mappings: accountMappings,
      })
      expect(undated.deletions).toEqual([])
      expect(undated.upserts.map((u) => u.record.name)).toEqual(['Back'])
    })
  })

  it('strips secret keys from the raw payload of upserts and rejects', () => {
    const batch = prepareBatch({
      entityType: 'account',
      records: [
        account({ Id: 'a1', Name: 'Acme', api_key: 'k', Owner: { Password: 'p', Name: 'Bo' } }),
        account({ Id: 'a2', AccessToken: 't' }),
      ],
      mappings: accountMappings,
    })
    expect(batch.upserts[0]?.raw).toEqual({ Id: 'a1', Name: 'Acme', Owner: { Name: 'Bo' } })
    expect(batch.rejects[0]?.raw).toEqual({ Id: 'a2' })
  })
})

describe('prepareBatch with text Postgres cannot store', () => {
  it('cleans the canonical fields and the raw payload, nested objects and arrays included', () => {
    const data = {
      Id: 'a1',
      Name: 'Bad\ud800Surrogate',
      Industry: 'Soft\u0000ware',
      'Odd\u0000Key': { list: ['x\u0000', { deep: '\udc00' }], keep: 'مرحبا 😀' },
    }
    const batch = prepareBatch({
      entityType: 'account',
      records: [account(data)],
      mappings: [...accountMappings, m('Industry', 'industry')],
    })
    expect(batch.upserts[0]?.record).toEqual({
      externalId: 'a1',
      name: 'Bad\ufffdSurrogate',
      industry: 'Software',
    })
    expect(batch.upserts[0]?.raw).toEqual({
      Id: 'a1',
      Name: 'Bad\ufffdSurrogate',
      Industry: 'Software',
      OddKey: { list: ['x', { deep: '\ufffd' }], keep: 'مرحبا 😀' },
    })
    expect(data.Industry).toBe('Soft\u0000ware')
  })

  it('cleans the raw payload of a rejected record', () => {
    const batch = prepareBatch({
      entityType: 'account',
      records: [account({ Id: 'a1', Name: '\u0000', Note: 'n\u0000\ud800' })],
      mappings: accountMappings,
    })
    expect(batch.rejects).toEqual([
      expect.objectContaining({ field: 'name', raw: { Id: 'a1', Name: '', Note: 'n\ufffd' } }),
    ])
  })

  it('does not copy a clean payload', () => {
    const data = { Id: 'a1', Name: 'Zoë 😀', Nested: { list: ['שלום', 1, null] } }
    const batch = prepareBatch({
      entityType: 'account',
      records: [account(data)],
      mappings: accountMappings,
    })
    expect(batch.upserts[0]?.raw).toBe(data)
  })
})

describe('stripSecrets', () => {
  it('removes secret-looking keys at any depth without touching the input', () => {
    const input = {
      Id: '1',
      access_token: 'a',
      refreshToken: 'b',
      client_secret: 'c',
      password: 'd',
      apiKey: 'e',
      'api-key': 'f',
      API_KEY: 'g',
      Authorization: 'Bearer h',
      nested: { deep: { SessionToken: 'i', keep: 1 }, list: [{ password: 'j', name: 'x' }, 2] },
      when: new Date(0),
      empty: null,
    }
    const copy = structuredClone(input)
    expect(stripSecrets(input)).toEqual({
      Id: '1',
      nested: { deep: { keep: 1 }, list: [{ name: 'x' }, 2] },
      when: new Date(0),
      empty: null,
    })
    expect(input).toEqual(copy)
  })

  it('drops a circular reference instead of recursing forever', () => {
    const input: Record<string, unknown> = { a: 1 }
    input.self = input
    expect(stripSecrets(input)).toEqual({ a: 1 })
  })
})

describe('prepareRecords', () => {
  it('groups by entity type and asks only for the mappings it needs', () => {
    const asked: EntityType[] = []
    const mappingsFor = (entityType: EntityType) => {
      asked.push(entityType)
      return entityType === 'person' ? personMappings : accountMappings
    }
    const result = prepareRecords(
      [
        { entityType: 'person', data: { Id: 'p1', Email: 'P@X.io', Account: { Id: 'a1' } } },
        account({ Id: 'a1', Name: 'Acme' }),
        { entityType: 'person', data: { Id: 'p2' }, deleted: true },
      ],
      mappingsFor,
    )
    expect(asked.sort()).toEqual(['account', 'person'])
    expect(result.person.upserts.map((u) => u.record)).toEqual([
      { externalId: 'p1', email: 'p@x.io', accountExternalId: 'a1' },
    ])
    expect(result.person.deletions).toEqual(['p2'])
    expect(result.account.upserts.map((u) => u.record)).toEqual([
      { externalId: 'a1', name: 'Acme' },
    ])
    expect(result.activity).toEqual({ upserts: [], deletions: [], rejects: [] })
  })

  it('prepares activities with dates and properties', () => {
    const result = prepareRecords(
      [{ entityType: 'activity', data: { id: 'e1', kind: 'open', at: 1_704_448_800, c: 'Q1' } }],
      () => [...activityMappings, m('c', 'properties.campaign')],
    )
    expect(result.activity.upserts[0]?.record).toEqual({
      externalId: 'e1',
      type: 'open',
      occurredAt: new Date('2024-01-05T10:00:00.000Z'),
      properties: { campaign: 'Q1' },
    })
  })
})
