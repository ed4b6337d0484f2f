import type { Tx } from '../../db/client.js'
import { connectors, streamState } from '../../db/schema/index.js'
import { DEFAULT_STREAM } from '../../src-agent/connectors/streams.js'

/**
 * The tenant's connection rows, each with `cursor` read from where it is committed now: the
 * stream_state row of `stream` (the one stream of a connector without streams by default).
 */
export async function connectionRows(tx: Tx, stream: string = DEFAULT_STREAM) {
  const rows = await tx.select().from(connectors)
  const states = await tx.select().from(streamState)
  return rows.map((row) => ({
    ...row,
    cursor:
      states.find((s) => s.connectorId === row.id && s.stream === stream && s.partition === '')
        ?.cursor ?? null,
  }))
}
