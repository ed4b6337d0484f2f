/**
 * Cursors that are JSON documents a connector wrote itself (a position in a walk, a watermark,
 * delta links), and the page a sync returns with one.
 */
import type { z } from 'zod'
import type { SourceRecord } from '../../shared/schemas.js'
import type { SyncResult } from '../../shared/schemas.js'

/**
 * The stored cursor, parsed with `schema`; undefined when there is none, or when it is not one
 * this connector wrote (then `onForeign` is told, and the caller starts afresh).
 */
export function readJsonCursor<T>(
  schema: z.ZodType<T>,
  cursor: string | null,
  onForeign: () => void,
): T | undefined {
  if (!cursor) return undefined
  let json: unknown
  try {
    json = JSON.parse(cursor)
  } catch {
    json = undefined
  }
  const parsed = schema.safeParse(json)
  if (parsed.success) return parsed.data
  onForeign()
  return undefined
}

/** One page of a sync, with its cursor written as JSON. */
export function jsonCursorPage(
  records: SourceRecord[],
  cursor: unknown,
  hasMore: boolean,
): SyncResult {
  return {
    records,
    cursor: JSON.stringify(cursor),
    hasMore,
    syncedAt: new Date(),
    stats: { created: 0, updated: 0, errors: 0 },
  }
}
