import { describe, expect, it } from 'vitest'
import { describePostgresError, isDataError, postgresError } from '../../db/errors.js'

/** A server error as the pg driver throws it, inside Drizzle's "Failed query" wrapper. */
function failedQuery(
  code: string,
  message: string,
  fields: { where?: string; column?: string } = {},
): Error {
  const server = Object.assign(new Error(message), { code, ...fields })
  return new Error('Failed query: insert into "accounts" … params: Ann,ann@corp.test,…', {
    cause: server,
  })
}

describe('postgresError', () => {
  it('keeps the code and server message, never the statement or its parameters', () => {
    const info = postgresError(failedQuery('23502', 'null value in column "name" violates …'))
    expect(info).toEqual({ code: '23502', message: 'null value in column "name" violates …' })
    expect(describePostgresError(failedQuery('57014', 'canceling statement'))).toBe(
      'Postgres error 57014: canceling statement',
    )
  })

  it('masks the value a data exception quotes, quotes inside it included', () => {
    const cases: Array<[string, string, string]> = [
      [
        '22003',
        'value "3000000000" is out of range for type integer',
        'value "…" is out of range for type integer',
      ],
      [
        '22P02',
        'invalid input syntax for type integer: "Ann "the" Admin"',
        'invalid input syntax for type integer: "…"',
      ],
      [
        '22008',
        'date/time field value out of range: "0000-01-01"',
        'date/time field value out of range: "…"',
      ],
      // Encoding messages quote encoding names and show bytes only.
      [
        '22021',
        'invalid byte sequence for encoding "UTF8": 0x00',
        'invalid byte sequence for encoding "UTF8": 0x00',
      ],
      ['22P05', 'unsupported Unicode escape sequence', 'unsupported Unicode escape sequence'],
    ]
    for (const [code, message, masked] of cases) {
      expect(postgresError(failedQuery(code, message)).message).toBe(masked)
    }
  })

  it('tells the parameter a value was refused in, and the column', () => {
    const where = 'JSON data, line 1: {"a":"x\\u0000...\nunnamed portal parameter $9 = \'...\''
    expect(
      postgresError(failedQuery('22P05', 'unsupported Unicode escape sequence', { where })),
    ).toMatchObject({ parameter: 9 })
    expect(postgresError(failedQuery('23502', 'null value', { column: 'name' }))).toMatchObject({
      column: 'name',
    })
  })

  it('uses the driver message of a failure that has no code, never Drizzle’s', () => {
    const dropped = new Error('Failed query: select 1\nparams: secret', {
      cause: new Error('Connection terminated unexpectedly'),
    })
    expect(postgresError(dropped)).toEqual({ message: 'Connection terminated unexpectedly' })
    expect(postgresError(new Error('Failed query: select $1\nparams: secret')).message).toBe(
      'query failed',
    )
  })
})

describe('isDataError', () => {
  it('is true for SQLSTATE classes 22 and 23 only', () => {
    expect(isDataError(failedQuery('22003', 'x'))).toBe(true)
    expect(isDataError(failedQuery('23514', 'x'))).toBe(true)
    expect(isDataError(failedQuery('40P01', 'deadlock detected'))).toBe(false)
    expect(isDataError(new Error('Connection terminated'))).toBe(false)
  })
})
