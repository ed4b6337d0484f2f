import { describe, it, expect } from 'vitest'
import {
  canonicalAccountSchema,
  canonicalActivitySchema,
  canonicalPersonSchema,
  canonicalSchemas,
  entityTypes,
  fieldMappingSchema,
  isPlainSourceRecord,
  requiredCanonicalFields,
  sourceRecordSchema,
} from '../../shared/schemas.js'

function failedPaths(result: {
  success: boolean
  error?: { issues: Array<{ path: PropertyKey[] }> }
}) {
  return result.error?.issues.map((issue) => issue.path.map(String).join('.')) ?? []
}

describe('canonicalPersonSchema', () => {
  it('accepts a full person and strips unknown keys', () => {
    const result = canonicalPersonSchema.safeParse({
      externalId: 'p1',
      email: 'ada@example.com',
      firstName: 'Ada',
      lastName: 'Lovelace',
      title: 'CTO',
      phone: '+44 20 7946 0000',
      accountExternalId: 'a1',
      extra: 'dropped',
    })
    expect(result.success).toBe(true)
    expect(result.data).toEqual({
      externalId: 'p1',
      email: 'ada@example.com',
      firstName: 'Ada',
      lastName: 'Lovelace',
      title: 'CTO',
      phone: '+44 20 7946 0000',
      accountExternalId: 'a1',
    })
  })

  it('accepts only an externalId', () => {
    expect(canonicalPersonSchema.safeParse({ externalId: 'p1' }).success).toBe(true)
  })

  it('rejects a missing or empty externalId', () => {
    expect(failedPaths(canonicalPersonSchema.safeParse({}))).toEqual(['externalId'])
    expect(failedPaths(canonicalPersonSchema.safeParse({ externalId: '' }))).toEqual(['externalId'])
  })

  it('rejects an invalid email', () => {
    const result = canonicalPersonSchema.safeParse({ externalId: 'p1', email: 'not-an-email' })
    expect(failedPaths(result)).toEqual(['email'])
  })
})

describe('canonicalAccountSchema', () => {
  it('accepts a full account', () => {
    const account = {
      externalId: 'a1',
      name: 'Acme',
      domain: 'acme.com',
      industry: 'Manufacturing',
      employeeCount: 1200,
      annualRevenue: 12.5e6,
    }
    expect(canonicalAccountSchema.parse(account)).toEqual(account)
  })

  it('requires a non-empty name', () => {
    expect(failedPaths(canonicalAccountSchema.safeParse({ externalId: 'a1' }))).toEqual(['name'])
    expect(failedPaths(canonicalAccountSchema.safeParse({ externalId: 'a1', name: '' }))).toEqual([
      'name',
    ])
  })

  it('rejects a fractional or negative employee count and a string revenue', () => {
    const base = { externalId: 'a1', name: 'Acme' }
    expect(failedPaths(canonicalAccountSchema.safeParse({ ...base, employeeCount: 1.5 }))).toEqual([
      'employeeCount',
    ])
    expect(failedPaths(canonicalAccountSchema.safeParse({ ...base, employeeCount: -1 }))).toEqual([
      'employeeCount',
    ])
    expect(failedPaths(canonicalAccountSchema.safeParse({ ...base, annualRevenue: '10' }))).toEqual(
      ['annualRevenue'],
    )
    expect(
      failedPaths(canonicalAccountSchema.safeParse({ ...base, annualRevenue: Infinity })),
    ).toEqual(['annualRevenue'])
  })
})

describe('canonicalActivitySchema', () => {
  it('accepts an activity with properties', () => {
    const activity = {
      externalId: 'x1',
      type: 'email_open',
      channel: 'email',
      occurredAt: new Date('2024-01-05T10:00:00Z'),
      personExternalId: 'p1',
      accountExternalId: 'a1',
      properties: { campaign: 'Q1', opens: 3 },
    }
    expect(canonicalActivitySchema.parse(activity)).toEqual(activity)
  })

  it('rejects an occurredAt that is a string or an invalid Date', () => {
    const base = { externalId: 'x1', type: 'meeting' }
    expect(
      failedPaths(canonicalActivitySchema.safeParse({ ...base, occurredAt: '2024-01-05' })),
    ).toEqual(['occurredAt'])
    expect(
      failedPaths(canonicalActivitySchema.safeParse({ ...base, occurredAt: new Date('nope') })),
    ).toEqual(['occurredAt'])
  })

  it('rejects a missing type and non-object properties', () => {
    const occurredAt = new Date()
    expect(
      failedPaths(canonicalActivitySchema.safeParse({ externalId: 'x1', occurredAt })),
    ).toEqual(['type'])
    const result = canonicalActivitySchema.safeParse({
      externalId: 'x1',
      type: 'meeting',
      occurredAt,
      properties: ['a'],
    })
    expect(failedPaths(result)).toEqual(['properties'])
  })
})

describe('schema tables', () => {
  it('has a canonical schema and required fields for every entity type', () => {
    expect(Object.keys(canonicalSchemas).sort()).toEqual([...entityTypes].sort())
    for (const entityType of entityTypes) {
      const shape = Object.keys(canonicalSchemas[entityType].shape)
      for (const field of requiredCanonicalFields[entityType]) expect(shape).toContain(field)
    }
  })
})

describe('fieldMappingSchema', () => {
  it('accepts a mapping and rejects an unknown transform or empty sourceField', () => {
    expect(
      fieldMappingSchema.safeParse({ sourceField: 'Name', targetField: 'name', transform: 'trim' })
        .success,
    ).toBe(true)
    expect(
      failedPaths(
        fieldMappingSchema.safeParse({ sourceField: 'Name', targetField: 'name', transform: 'x' }),
      ),
    ).toEqual(['transform'])
    expect(
      failedPaths(
        fieldMappingSchema.safeParse({ sourceField: '', targetField: 'name', transform: 'none' }),
      ),
    ).toEqual(['sourceField'])
  })
})

describe('sourceRecordSchema', () => {
  it('accepts each modifiedAt form and rejects an unknown entity type', () => {
    for (const modifiedAt of [new Date(), '2024-01-01T00:00:00Z', 1_700_000_000]) {
      expect(
        sourceRecordSchema.safeParse({ entityType: 'person', data: {}, modifiedAt }).success,
      ).toBe(true)
    }
    expect(failedPaths(sourceRecordSchema.safeParse({ entityType: 'lead', data: {} }))).toEqual([
      'entityType',
    ])
    for (const data of [null, [], 'x']) {
      expect(failedPaths(sourceRecordSchema.safeParse({ entityType: 'person', data }))).toEqual([
        'data',
      ])
    }
  })

  it('has a quick check that accepts plain records and nothing the schema refuses', () => {
    const plain = [
      { entityType: 'person', data: { Id: '1' } },
      { entityType: 'account', data: {}, deleted: true, modifiedAt: new Date() },
      { entityType: 'activity', data: {}, deleted: false, modifiedAt: '2024-01-01T00:00:00Z' },
      { entityType: 'person', data: {}, modifiedAt: 1_700_000_000, extra: 'kept' },
    ]
    for (const record of plain) {
      expect(isPlainSourceRecord(record)).toBe(true)
      expect(sourceRecordSchema.safeParse(record).success).toBe(true)
    }
    const odd: unknown[] = [
      null,
      'person',
      [],
      {},
      { entityType: 'lead', data: {} },
      { entityType: 'person' },
      { entityType: 'person', data: null },
      { entityType: 'person', data: [] },
      { entityType: 'person', data: 'x' },
      { entityType: 'person', data: {}, deleted: 'yes' },
      { entityType: 'person', data: {}, deleted: null },
      { entityType: 'person', data: {}, modifiedAt: new Date(Number.NaN) },
      { entityType: 'person', data: {}, modifiedAt: Number.NaN },
      { entityType: 'person', data: {}, modifiedAt: Number.POSITIVE_INFINITY },
      { entityType: 'person', data: {}, modifiedAt: null },
      { entityType: 'person', data: {}, modifiedAt: {} },
      { entityType: 'person', data: {}, modifiedAt: 10n },
    ]
    for (const value of odd) {
      // Never plain where the schema refuses; each of these the schema refuses.
      expect(sourceRecordSchema.safeParse(value).success, String(value)).toBe(false)
      expect(isPlainSourceRecord(value)).toBe(false)
    }
  })
})
