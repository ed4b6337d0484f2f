import { DbError } from '../shared/errors.js'

/** What a failed statement is reported by: never the statement text or its parameters. */
export interface PostgresErrorInfo {
  /** The server's message; in a data exception (class 22) the value it quotes is masked. */
  message: string
  /** The SQLSTATE, when the failure came from the server. */
  code?: string
  /** The column the server named (a not-null violation, for one). */
  column?: string
  /** The statement parameter ($n) the server could not read as its type. */
  parameter?: number
}

/**
 * The Postgres error inside whatever the driver or Drizzle threw. Drizzle's own message
 * quotes the statement's parameters, which may hold credentials and record values, so only the
 * server's message is kept, and in a data exception not even the value it quotes.
 */
export function postgresError(err: unknown): PostgresErrorInfo {
  let current: unknown = err
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    const fields = current as { code?: unknown; column?: unknown; where?: unknown }
    const code = fields.code
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) {
      // "unnamed portal parameter $4 = '...'": the value itself is left out by default.
      const parameter =
        typeof fields.where === 'string'
          ? /unnamed portal parameter \$(\d+)/.exec(fields.where)?.[1]
          : undefined
      return {
        message: code.startsWith('22') ? maskValue(current.message) : current.message,
        code,
        ...(typeof fields.column === 'string' ? { column: fields.column } : {}),
        ...(parameter === undefined ? {} : { parameter: Number(parameter) }),
      }
    }
    current = current.cause
  }
  return { message: driverMessage(err) }
}

/**
 * Whether a failure was caused by the data a statement wrote, not by the database or the
 * statement: SQLSTATE class 22 (data exception: a value out of range, an invalid byte sequence,
 * untranslatable text) or 23 (integrity constraint violation).
 */
export function isDataError(err: unknown): boolean {
  const code = postgresError(err).code
  return code !== undefined && (code.startsWith('22') || code.startsWith('23'))
}

/**
 * Whether Postgres failed the statement to end a conflict with another transaction (a deadlock,
 * 40P01, or a serialization failure, 40001): the same work may well succeed when tried again.
 */
export function isConflictError(err: unknown): boolean {
  const code = postgresError(err).code
  return code === '40P01' || code === '40001'
}

/** A failed statement in one line: "Postgres error 22003: value "…" is out of range …". */
export function describePostgresError(err: unknown): string {
  const { code, message } = postgresError(err)
  return code === undefined ? message : `Postgres error ${code}: ${message}`
}

/** Wraps a database failure with a readable, parameter-free message. */
export function toDbError(err: unknown, doing: string): DbError {
  if (err instanceof DbError) return err
  const pgErr = postgresError(err)
  return new DbError('db_query_failed', `Database error while ${doing}: ${pgErr.message}`, {
    cause: err,
  })
}

/**
 * A data exception quotes the value it refused (`value "3000000000" is out of range for type
 * integer`, `invalid input syntax for type integer: "lots"`); it is masked, from the first quote
 * to the last, since a value may hold quotes itself. The two encoding messages quote only
 * encoding names and show only bytes, and are kept.
 */
function maskValue(message: string): string {
  return ENCODING_MESSAGE.test(message) ? message : message.replace(/"[\s\S]*"/, '"…"')
}

const ENCODING_MESSAGE = new RegExp(
  '^(?:invalid byte sequence for encoding "[\\w-]+": [0-9a-fx ]+' +
    '|character with byte sequence [0-9a-fx ]+ in encoding "[\\w-]+" ' +
    'has no equivalent in encoding "[\\w-]+")$',
)

/** The first message in the chain that is not Drizzle's "Failed query: <sql> params: …". */
function driverMessage(err: unknown): string {
  let current: unknown = err
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    if (!current.message.startsWith('Failed query')) return current.message
    current = current.cause
  }
  return 'query failed'
}
