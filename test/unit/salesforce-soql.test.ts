import { describe, expect, it } from 'vitest'
import {
  MAX_QUERY_URL,
  bulkQuery,
  fitsInUrl,
  keysetCondition,
  keysetQuery,
  selectableFields,
  soqlDateTime,
  soqlString,
} from '../../src-agent/connectors/salesforce/soql.js'

describe('Salesforce SOQL building', () => {
  it('writes datetimes unquoted in whole UTC seconds and escapes strings', () => {
    expect(soqlDateTime('2025-03-01T17:01:30.000Z')).toBe('2025-03-01T17:01:30Z')
    expect(soqlDateTime('2025-03-01T18:01:30.000+01:00')).toBe('2025-03-01T17:01:30Z')
    expect(soqlString("O'Brien \\ co")).toBe("'O\\'Brien \\\\ co'")
  })

  it('pages on (SystemModstamp, Id) with an Id tie-break, or from a watermark inclusive', () => {
    expect(keysetCondition(null)).toBeNull()
    expect(keysetCondition({ stamp: '2025-01-01T00:00:06.000Z', id: '003X' })).toBe(
      "(SystemModstamp > 2025-01-01T00:00:06Z OR (SystemModstamp = 2025-01-01T00:00:06Z AND Id > '003X'))",
    )
    expect(keysetCondition({ stamp: '2026-01-02T00:00:00.000Z', id: null })).toBe(
      'SystemModstamp >= 2026-01-02T00:00:00Z',
    )
    expect(
      keysetQuery({ object: 'Lead', fields: ['Id', 'SystemModstamp'], position: null, limit: 200 }),
    ).toBe('SELECT Id, SystemModstamp FROM Lead ORDER BY SystemModstamp ASC, Id ASC LIMIT 200')
    expect(
      bulkQuery({
        object: 'Contact',
        fields: ['Id'],
        position: { stamp: '2026-01-02T00:00:00.000Z', id: null },
      }),
    ).toBe('SELECT Id FROM Contact WHERE SystemModstamp >= 2026-01-02T00:00:00Z')
  })

  it('selects every plain field, key fields first, never compound or binary ones', () => {
    const selected = selectableFields('Account', {
      name: 'Account',
      fields: [
        { name: 'Name', type: 'string' },
        { name: 'Id', type: 'id' },
        { name: 'BillingAddress', type: 'address' },
        { name: 'Logo__c', type: 'base64' },
        { name: 'IsDeleted', type: 'boolean' },
        { name: 'SystemModstamp', type: 'datetime' },
        { name: 'Score__c', type: 'double' },
      ],
    })
    expect(selected.fields).toEqual(['Id', 'SystemModstamp', 'IsDeleted', 'Name', 'Score__c'])
    expect(selected.types.get('Score__c')).toBe('double')
    expect(selected.types.has('BillingAddress')).toBe(false)
  })

  it('knows when a query would be too long for a URL', () => {
    const fields = Array.from({ length: 900 }, (_, i) => `Extra_Field_${i}__c`)
    const soql = keysetQuery({ object: 'Account', fields, position: null, limit: 2000 })
    expect(fitsInUrl('https://acme.my.salesforce.com', '62.0', soql)).toBe(false)
    expect(fitsInUrl('https://acme.my.salesforce.com', '62.0', 'SELECT Id FROM Account')).toBe(true)
    expect(MAX_QUERY_URL).toBeLessThan(16_384)
  })
})
