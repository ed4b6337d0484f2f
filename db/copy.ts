import { finished } from 'node:stream/promises'
import type pg from 'pg'
import { from as copyFrom } from 'pg-copy-streams'
import type { Tx } from './client.js'

/**
 * Runs `COPY … FROM STDIN` in the transaction `tx` (its savepoint included) with `data` as the
 * whole input (its bytes, in chunks), and returns the rows Postgres took. A refused value fails
 * the COPY with the server's error, as a statement would. The statement is reported to the
 * handle's `onQuery` like every other one (its text only, never the data).
 */
export async function copyIn(
  tx: Tx,
  statement: string,
  data: readonly Uint8Array[],
): Promise<number> {
  const session = sessionOf(tx)
  session.logger?.logQuery(statement, [])
  const stream = session.client.query(copyFrom(statement))
  for (const chunk of data) stream.write(chunk)
  stream.end()
  await finished(stream)
  return stream.rowCount
}

interface NodePgSession {
  client: pg.ClientBase
  logger?: { logQuery(query: string, params: unknown[]): void }
}

/**
 * The pg client a Drizzle transaction runs on: Drizzle's node-postgres session holds the pool
 * client it checked out for the transaction, and COPY needs that client itself.
 */
function sessionOf(tx: Tx): NodePgSession {
  const session = tx._.session as unknown as Partial<NodePgSession>
  if (typeof session.client?.query !== 'function') {
    throw new Error('copyIn: the transaction has no node-postgres client')
  }
  return session as NodePgSession
}
