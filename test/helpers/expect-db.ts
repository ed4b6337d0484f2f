import { expect } from 'vitest'
import { postgresError } from '../../db/errors.js'

/** Asserts that a database call fails with a Postgres error matching `pattern`. */
export async function expectPgError(promise: Promise<unknown>, pattern: RegExp): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err, 'expected the statement to fail').toBeDefined()
  expect(postgresError(err).message).toMatch(pattern)
}
