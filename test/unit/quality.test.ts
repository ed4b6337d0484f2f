import { describe, it, expect } from 'vitest'
import { canonicalPersonSchema, type FieldMapping } from '../../shared/schemas.js'
import {
  checkRecord,
  coerceRecord,
  dedupeNewest,
  normalizeDomain,
  normalizeEmail,
  toDate,
  toNumber,
  toTimestamp,
} from '../../src-agent/pipeline/quality.js'

const m = (
  sourceField: string,
  targetField: string,
  extra: Partial<FieldMapping> = {},
): FieldMapping => ({ sourceField, targetField, transform: 'none', ...extra })

describe('toNumber', () => {
  it('reads numbers and numeric text with thousands separators and spaces', () => {
    expect(toNumber(7)).toBe(7)
    expect(toNumber('1,200')).toBe(1200)
    expect(toNumber(' 42 ')).toBe(42)
    expect(toNumber('1,234,567.5')).toBe(1234567.5)
    expect(toNumber('-3.25')).toBe(-3.25)
    expect(toNumber('1e6')).toBe(1_000_000)
  })

  it('refuses text that is not a number', () => {
    expect(toNumber('abc')).toBeUndefined()
    expect(toNumber('1,2,3')).toBeUndefined()
    expect(toNumber('12abc')).toBeUndefined()
    expect(toNumber('$100')).toBeUndefined()
    expect(toNumber(Number.NaN)).toBeUndefined()
    expect(toNumber(true)).toBeUndefined()
  })
})

describe('toDate', () => {
  it('refuses a day its month does not have instead of rolling it over', () => {
    expect(toDate('2025-02-30')).toBeUndefined()
    expect(toDate('2025-04-31T10:00:00Z')).toBeUndefined()
    expect(toTimestamp('2025-02-30')).toBeUndefined()
    expect(toDate('2024-02-29')?.toISOString()).toBe('2024-02-29T00:00:00.000Z')
  })

  const iso = '2024-01-05T10:00:00.000Z'
  const ms = Date.parse(iso)

  it('reads ISO text and Date objects', () => {
    expect(toDate(iso)?.toISOString()).toBe(iso)
    expect(toDate('2024-01-05T11:00:00+01:00')?.toISOString()).toBe(iso)
    expect(toDate(new Date(iso))?.toISOString()).toBe(iso)
  })

  it('reads epoch seconds below 1e11 and milliseconds above', () => {
    expect(toDate(ms / 1000)?.toISOString()).toBe(iso)
    expect(toDate(ms)?.toISOString()).toBe(iso)
    expect(toDate(String(ms / 1000))?.toISOString()).toBe(iso)
    expect(toDate(` ${ms} `)?.toISOString()).toBe(iso)
  })

  it('refuses unreadable values', () => {
    expect(toDate('yesterday-ish')).toBeUndefined()
    expect(toDate(new Date('nope'))).toBeUndefined()
    expect(toDate(true)).toBeUndefined()
    expect(toDate({})).toBeUndefined()
  })

  it('gives epoch milliseconds for modifiedAt values', () => {
    expect(toTimestamp(iso)).toBe(ms)
    expect(toTimestamp(ms / 1000)).toBe(ms)
    expect(toTimestamp(undefined)).toBeUndefined()
    expect(toTimestamp('garbage')).toBeUndefined()
  })
})

describe('normalizeEmail', () => {
  it('trims and lower-cases, and refuses an invalid address', () => {
    expect(normalizeEmail('  Ada.Lovelace@Example.COM ')).toBe('ada.lovelace@example.com')
    expect(normalizeEmail('not an email')).toBeUndefined()
    expect(normalizeEmail(42)).toBeUndefined()
  })

  it('keeps exactly the addresses the canonical person schema accepts', () => {
    const addresses = [
      'a@b.co',
      'first.last+tag@sub.example.org',
      "o'brien@example.ie",
      'x_y-z@ex-ample.com',
      '.dot@example.com',
      'dot.@example.com',
      'two..dots@example.com',
      'no-at.example.com',
      'a@b',
      'a@b.c',
      'a@-b.com',
      'a@b..com',
      'a b@example.com',
      'ünï@example.com',
      'a@exämple.com',
      '@example.com',
      'a@@example.com',
      'a@example.c0m',
    ]
    for (const address of addresses) {
      const accepted = canonicalPersonSchema.safeParse({ externalId: 'p', email: address }).success
      expect(normalizeEmail(address) !== undefined, address).toBe(accepted)
    }
    expect(addresses.filter((a) => normalizeEmail(a) !== undefined)).toEqual([
      'a@b.co',
      'first.last+tag@sub.example.org',
      "o'brien@example.ie",
      'x_y-z@ex-ample.com',
    ])
  })
})

describe('normalizeDomain', () => {
  it.each([
    ['https://www.Acme.com/pricing', 'acme.com'],
    ['WWW.acme.com', 'acme.com'],
    ['acme.com/', 'acme.com'],
    ['mailto:bob@acme.com', 'acme.com'],
    ['bob@acme.com', 'acme.com'],
    ['http://user:pw@shop.acme.co.uk:8080/x?y=1#z', 'shop.acme.co.uk'],
    ['  acme.com.  ', 'acme.com'],
    ['acme.com?ref=ad', 'acme.com'],
  ])('%s → %s', (input, expected) => {
    expect(normalizeDomain(input)).toBe(expected)
  })

  it('refuses values without a domain', () => {
    expect(normalizeDomain('N/A')).toBeUndefined()
    expect(normalizeDomain('localhost')).toBeUndefined()
    expect(normalizeDomain('https://')).toBeUndefined()
    expect(normalizeDomain(12)).toBeUndefined()
  })
})

describe('coerceRecord', () => {
  it('coerces every kind of field', () => {
    const { record, issues } = coerceRecord({
      externalId: 1234,
      accountExternalId: ' 001 ',
      name: 'Acme',
      industry: '',
      domain: 'https://www.Acme.com/pricing',
      employeeCount: '1,200',
      annualRevenue: ' 42 ',
      email: ' Bob@Acme.COM',
      phone: 5551234,
      title: null,
      occurredAt: 1_704_448_800,
    })
    expect(issues).toEqual([])
    expect(record).toEqual({
      externalId: '1234',
      accountExternalId: '001',
      name: 'Acme',
      domain: 'acme.com',
      employeeCount: 1200,
      annualRevenue: 42,
      email: 'bob@acme.com',
      phone: '5551234',
      occurredAt: new Date('2024-01-05T10:00:00.000Z'),
    })
    expect('industry' in record).toBe(false)
    expect('title' in record).toBe(false)
  })

  it('reports each field that cannot be coerced, by name', () => {
    const { record, issues } = coerceRecord({
      employeeCount: 'abc',
      annualRevenue: 'lots',
      occurredAt: 'soon',
      email: 'bob at acme',
      domain: 'N/A',
    })
    expect(record).toEqual({})
    expect(issues).toEqual([
      { field: 'employeeCount', reason: 'field "employeeCount" is not a number: "abc"' },
      { field: 'annualRevenue', reason: 'field "annualRevenue" is not a number: "lots"' },
      { field: 'occurredAt', reason: 'field "occurredAt" is not a valid date: "soon"' },
      { field: 'email', reason: 'field "email" is not a valid email address' },
      { field: 'domain', reason: 'field "domain" is not a domain, URL or email address: "N/A"' },
    ])
  })
})

describe('checkRecord', () => {
  const accountMappings = [
    m('Id', 'externalId'),
    m('Name', 'name'),
    m('Employees', 'employeeCount'),
  ]

  it('returns a valid canonical record', () => {
    const result = checkRecord(
      'account',
      { externalId: 7, name: 'Acme', employeeCount: '1,200', junk: 'x' },
      accountMappings,
    )
    expect(result).toEqual({
      ok: true,
      record: { externalId: '7', name: 'Acme', employeeCount: 1200 },
    })
  })

  it('rejects a missing required canonical field, naming it and its source', () => {
    const result = checkRecord('account', { externalId: 'a1', name: '  ' }, accountMappings)
    expect(result).toEqual({
      ok: false,
      externalId: 'a1',
      issue: {
        field: 'name',
        reason: 'missing required field "name" (source field "Name" is empty)',
      },
    })
  })

  it('rejects a missing source value of a mapping marked required', () => {
    const mappings = [m('Id', 'externalId'), m('Email', 'email', { required: true })]
    const result = checkRecord('person', { externalId: 'p1' }, mappings)
    expect(result.ok).toBe(false)
    if (result.ok) return
    expect(result.issue).toEqual({
      field: 'email',
      reason: 'missing required field "email" (source field "Email" is empty)',
    })
  })

  it('checks required properties.<key> targets inside properties', () => {
    const mappings = [
      m('id', 'externalId'),
      m('kind', 'type'),
      m('at', 'occurredAt'),
      m('campaign', 'properties.campaign', { required: true }),
    ]
    const base = { externalId: 'e1', type: 'open', occurredAt: '2024-01-05T10:00:00Z' }
    expect(checkRecord('activity', { ...base, properties: { campaign: 'Q1' } }, mappings).ok).toBe(
      true,
    )
    const result = checkRecord('activity', base, mappings)
    expect(result.ok ? null : result.issue.field).toBe('properties.campaign')
  })

  it('rejects a record with no externalId with a null externalId', () => {
    const result = checkRecord('person', { email: 'a@b.co' }, [m('Id', 'externalId')])
    expect(result).toEqual({
      ok: false,
      externalId: null,
      issue: {
        field: 'externalId',
        reason: 'missing required field "externalId" (source field "Id" is empty)',
      },
    })
  })

  it('reports a coercion failure before schema validation', () => {
    const result = checkRecord('account', { externalId: 'a1', name: 'A', employeeCount: 'abc' }, [])
    expect(result.ok ? null : result.issue.reason).toBe(
      'field "employeeCount" is not a number: "abc"',
    )
  })

  it('reports a schema failure by path', () => {
    const result = checkRecord('account', { externalId: 'a1', name: 'A', employeeCount: '1.5' }, [])
    expect(result.ok).toBe(false)
    if (result.ok) return
    expect(result.issue.field).toBe('employeeCount')
    expect(result.issue.reason).toMatch(/^invalid field "employeeCount": /)
  })

  it('validates activities with a coerced occurredAt', () => {
    const result = checkRecord(
      'activity',
      { externalId: 'e1', type: 'open', occurredAt: '2024-01-05T10:00:00Z', properties: { a: 1 } },
      [],
    )
    expect(result).toEqual({
      ok: true,
      record: {
        externalId: 'e1',
        type: 'open',
        occurredAt: new Date('2024-01-05T10:00:00Z'),
        properties: { a: 1 },
      },
    })
  })
})

describe('checkRecord with text and values Postgres cannot store', () => {
  const mappings = [m('Id', 'externalId'), m('Name', 'name'), m('Employees', 'employeeCount')]

  it('removes NUL and replaces lone surrogates in every text field', () => {
    const result = checkRecord(
      'account',
      {
        externalId: 'a\u00001',
        name: 'Bad\ud800Surrogate',
        industry: 'Soft\u0000ware',
        domain: 'acme\u0000.com',
      },
      mappings,
    )
    expect(result).toEqual({
      ok: true,
      record: {
        externalId: 'a1',
        name: 'Bad\ufffdSurrogate',
        domain: 'acme.com',
        industry: 'Software',
      },
    })
  })

  it('keeps clean text as it is, emoji and RTL included', () => {
    const person = { externalId: 'p1', firstName: 'Zoë 😀', lastName: 'مرحبا', title: '👩🏽‍💻' }
    expect(checkRecord('person', person, [])).toEqual({ ok: true, record: person })
  })

  it('cleans nested properties of an activity', () => {
    const result = checkRecord(
      'activity',
      {
        externalId: 'e1',
        type: 'open',
        occurredAt: '2024-01-05T10:00:00Z',
        properties: { subject: 'Hi\u0000', tags: ['\udc00x', { 'k\u0000': 'v' }], n: 1 },
      },
      [],
    )
    expect(result.ok ? result.record.properties : null).toEqual({
      subject: 'Hi',
      tags: ['\ufffdx', { k: 'v' }],
      n: 1,
    })
  })

  it('treats a name of NUL and spaces as missing', () => {
    const result = checkRecord('account', { externalId: 'a1', name: ' \u0000 ' }, mappings)
    expect(result.ok ? null : result.issue.field).toBe('name')
  })

  it('refuses a count the integer column cannot hold, naming the field', () => {
    const ok = checkRecord(
      'account',
      { externalId: 'a1', name: 'A', employeeCount: 2_147_483_647 },
      [],
    )
    expect(ok.ok).toBe(true)
    for (const employeeCount of ['3000000000', 2_147_483_648, 1e20, -1]) {
      const result = checkRecord('account', { externalId: 'a1', name: 'A', employeeCount }, [])
      expect(result.ok ? null : result.issue.field, String(employeeCount)).toBe('employeeCount')
    }
  })

  it('refuses an occurredAt outside the years 1 to 9999, naming the field', () => {
    const base = { externalId: 'e1', type: 'open' }
    expect(checkRecord('activity', { ...base, occurredAt: '9999-12-31T23:59:59Z' }, []).ok).toBe(
      true,
    )
    for (const occurredAt of [1e15, '+020000-01-01T00:00:00Z', '0000-01-01T00:00:00Z']) {
      const result = checkRecord('activity', { ...base, occurredAt }, [])
      expect(result.ok ? null : result.issue.field, String(occurredAt)).toBe('occurredAt')
    }
  })
})

describe('dedupeNewest', () => {
  type Item = { id: string; at?: unknown; n: number }
  const dedupe = (items: Item[]) =>
    dedupeNewest(
      items,
      (item) => item.id,
      (item) => item.at,
    ).map((item) => item.n)

  it('keeps the greatest modifiedAt whatever its position', () => {
    expect(
      dedupe([
        { id: 'a', at: '2024-03-01T00:00:00Z', n: 1 },
        { id: 'a', at: '2024-01-01T00:00:00Z', n: 2 },
        { id: 'b', n: 3 },
      ]),
    ).toEqual([1, 3])
    expect(
      dedupe([
        { id: 'a', at: 1_700_000_000, n: 1 },
        { id: 'a', at: new Date(1_700_000_001_000), n: 2 },
      ]),
    ).toEqual([2])
  })

  it('keeps the later one on a tie or when modifiedAt is absent', () => {
    expect(
      dedupe([
        { id: 'a', at: '2024-01-01T00:00:00Z', n: 1 },
        { id: 'a', at: 1_704_067_200_000, n: 2 },
      ]),
    ).toEqual([2])
    expect(
      dedupe([
        { id: 'a', n: 1 },
        { id: 'a', n: 2 },
        { id: 'b', n: 3 },
      ]),
    ).toEqual([2, 3])
    expect(
      dedupe([
        { id: 'a', at: '2024-01-01T00:00:00Z', n: 1 },
        { id: 'a', n: 2 },
      ]),
    ).toEqual([2])
  })
})
