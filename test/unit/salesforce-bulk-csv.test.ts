import { describe, expect, it } from 'vitest'
import { parseCsv, toRecord } from '../../src-agent/connectors/salesforce/bulk.js'
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
