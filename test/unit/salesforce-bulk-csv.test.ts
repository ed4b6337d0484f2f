import { describe, expect, it } from 'vitest'
import { parseCsv, recordReader, toRecord } from '../../src-agent/connectors/salesforce/bulk.js'
import { salesforceError, toVendorError } from '../../src-agent/connectors/salesforce/errors.js'

describe('Bulk API 2.0 CSV results', () => {
  it('parses quoted cells with commas, quotes, newlines, and CRLF rows', () => {
    const csv =
      'Id,Description,Name\r\n001A,"Line one\nSays ""hi"", then; more",  Acme  \r\n001B,,x\n'
    expect(parseCsv(csv)).toEqual([
      ['Id', 'Description', 'Name'],
      ['001A', 'Line one\nSays "hi", then; more', '  Acme  '],
      ['001B', '', 'x'],
    ])
    expect(parseCsv('Id\n')).toEqual([['Id']])
    expect(parseCsv('')).toEqual([])
    // Edges: empty quoted cells, a quote pair at a cell's end, no final newline, a final comma.
    expect(parseCsv('a,"",""""\r\n"x""","y\r\nz",')).toEqual([
      ['a', '', '"'],
      ['x"', 'y\r\nz', ''],
    ])
    expect(parseCsv('a\n\nb')).toEqual([['a'], [''], ['b']])
  })

  it('types cells by the describe and nests relationship columns', () => {
    const types = new Map([
      ['IsDeleted', 'boolean'],
      ['NumberOfEmployees', 'int'],
      ['AnnualRevenue', 'currency'],
      ['Name', 'string'],
    ])
    const header = ['Id', 'IsDeleted', 'NumberOfEmployees', 'AnnualRevenue', 'Name', 'Owner.Email']
    expect(
      toRecord(header, ['001A', 'false', '20', '250001.5', '', 'o@example.com'], types),
    ).toEqual({
      Id: '001A',
      IsDeleted: false,
      NumberOfEmployees: 20,
      AnnualRevenue: 250001.5,
      Name: null,
      Owner: { Email: 'o@example.com' },
    })
  })
})

describe('Bulk result records', () => {
  it('reads every row of a wide header into the same keys, in header order, with nested columns', () => {
    const fields = Array.from({ length: 30 }, (_, n) => `Field_${n}__c`)
    // Names that need quoting in code: a quote, a backslash, a line separator, a non-Latin name.
    const odd = ['Say"Hi"__c', 'Back\\slash__c', 'Line\u2028Sep__c', 'Größe__c']
    const header = ['Id', ...fields, 'Owner.Email', 'IsDeleted', ...odd, 'Owner.Manager.Name']
    const types = new Map([
      ['IsDeleted', 'boolean'],
      ['Field_3__c', 'double'],
    ])
    const read = recordReader(header, types)
    const cell = (column: string, n: number, id: string): string =>
      column === 'Id'
        ? id
        : column === 'IsDeleted'
          ? 'true'
          : column === 'Field_3__c'
            ? '42'
            : `v${n}`
    const row = (id: string): string[] => header.map((column, n) => cell(column, n, id))
    const expected = (id: string): Record<string, unknown> => {
      const record: Record<string, unknown> = { Id: id }
      fields.forEach((field, n) => (record[field] = n === 3 ? 42 : `v${n + 1}`))
      record.Owner = { Email: 'v31', Manager: { Name: 'v37' } }
      record.IsDeleted = true
      odd.forEach((name, n) => (record[name] = `v${33 + n}`))
      return record
    }
    for (const id of ['003A', '003B']) {
      const record = read(row(id))
      expect(record).toStrictEqual(expected(id))
      expect(JSON.stringify(record)).toBe(JSON.stringify(expected(id)))
      expect(Object.getPrototypeOf(record)).toBe(Object.prototype)
    }
    // A short row: the missing cells read as empty ones.
    expect(read(['003C', 'x'])).toMatchObject({ Id: '003C', Field_0__c: 'x', Field_1__c: null })
    expect(read(['003C']).Owner).toStrictEqual({ Email: null, Manager: { Name: null } })
  })

  it('reads a header that is not one tree of names as before, and __proto__ as a key of its own', () => {
    const types = new Map<string, string>()
    // A name twice: the last cell wins.
    expect(recordReader(['Id', 'Name', 'Name'], types)(['1', 'a', 'b'])).toStrictEqual({
      Id: '1',
      Name: 'b',
    })
    // A column that is also another's parent: whichever comes later decides.
    expect(recordReader(['Owner', 'Owner.Email'], types)(['x', 'e'])).toStrictEqual({
      Owner: { Email: 'e' },
    })
    expect(recordReader(['Owner.Email', 'Owner'], types)(['e', 'x'])).toStrictEqual({
      Owner: 'x',
    })
    // A column named __proto__ is a key of the record's own, never its prototype.
    const headers = [
      ['Id', '__proto__'],
      ['Id', 'Owner.__proto__'],
      ['Id', '__proto__', '__proto__.Name'],
    ]
    for (const header of headers) {
      for (const cell of ['', 'x']) {
        const record = recordReader(header, types)(['1', cell, 'n'])
        const owner = header[1] === 'Owner.__proto__' ? (record.Owner as object) : record
        expect(Object.getPrototypeOf(owner)).toBe(Object.prototype)
        expect(Object.keys(owner)).toContain('__proto__')
      }
    }
    const nested = recordReader(['Id', '__proto__', '__proto__.Name'], types)(['1', 'x', 'n'])
    expect(Object.getOwnPropertyDescriptor(nested, '__proto__')?.value).toStrictEqual({ Name: 'n' })
  })
})

describe('Salesforce errors', () => {
  const httpError = (errorCode: string, message: string) =>
    Object.assign(new Error(message), { name: errorCode, errorCode })

  it('reads the Salesforce code inside a plain-text error body', () => {
    const err = httpError(
      'ERROR_HTTP_400',
      '[{"errorCode":"INVALIDJOBSTATE","message":"Job is InProgress"}]',
    )
    expect(salesforceError(err)).toEqual({ code: 'INVALIDJOBSTATE', message: 'Job is InProgress' })
  })

  it('classifies session, quota, outage and refusal', () => {
    expect(toVendorError(httpError('INVALID_SESSION_ID', 'Session expired'), 'x')).toMatchObject({
      code: 'vendor_auth_failed',
      retryable: false,
    })
    expect(toVendorError(httpError('REQUEST_LIMIT_EXCEEDED', 'TotalRequests'), 'x')).toMatchObject({
      code: 'vendor_quota_exhausted',
    })
    expect(toVendorError(httpError('ERROR_HTTP_503', '<html>'), 'x')).toMatchObject({
      code: 'vendor_unavailable',
      retryable: true,
    })
    expect(
      toVendorError(
        Object.assign(new Error('connect refused'), { name: 'FetchError', code: 'ECONNREFUSED' }),
        'x',
      ),
    ).toMatchObject({
      code: 'vendor_unavailable',
    })
    expect(
      toVendorError(httpError('INVALID_FIELD', "No such column 'Foo'"), 'reading records'),
    ).toMatchObject({
      code: 'vendor_bad_response',
      retryable: false,
      userMessage:
        "Salesforce refused the request while reading records (INVALID_FIELD): No such column 'Foo'",
    })
  })
})
