import { DbError } from '../shared/errors.js'

/**
 * The Postgres error inside whatever the driver or Drizzle threw. Drizzle's own message
 * quotes the statement's parameters, which may hold credentials, so only the server's
 * message is kept.
 */
export function postgresError(err: unknown): { message: string; code?: string } {
  let current: unknown = err
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    const code = (current as { code?: unknown }).code
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) {
      return { message: current.message, code }
    }
    current = current.cause
  }
  return {
    message:
      err instanceof Error && !err.message.startsWith('Failed query')
        ? err.message
        : 'query failed',
  }
}

/** Wraps a database failure with a readable, parameter-free message. */
export function toDbError(err: unknown, doing: string): DbError {
  if (err instanceof DbError) return err
  const pgErr = postgresError(err)
  return new DbError('db_query_failed', `Database error while ${doing}: ${pgErr.message}`, {
    cause: err,
  })
}
