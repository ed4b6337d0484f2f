/**
 * The Salesforce sync cursor of one stream (one object): a JSON string the pipeline stores with
 * each committed page.
 *
 * `position` is a keyset position (SystemModstamp, Id): every record ordered at or before it has
 * been read, so the next query asks for `SystemModstamp > W OR (SystemModstamp = W AND Id >
 * lastId)` and records sharing a timestamp across a page boundary are neither lost nor read
 * twice. A position without an id means "from W inclusive": a look-back, set at the end of a pass
 * whose last changes were too recent to rule out a later commit stamped before them (passEnd).
 * While a Bulk job's results are read, `bulk` holds the job and the next result locator.
 * `quota` marks that the last page pushed API usage past the threshold.
 *
 * Before streams, a connection kept one cursor (version 1) for all six objects; splitLegacyCursor
 * turns it into one per stream.
 */
import { z } from 'zod'
import { AppError } from '../../../shared/errors.js'

/** The objects read, in the order a sync reads their streams: accounts first, so people and activities find them. */
export const SYNC_OBJECTS = ['Account', 'Contact', 'Lead', 'Opportunity', 'Task', 'Event'] as const
export type SyncObject = (typeof SYNC_OBJECTS)[number]

const objectSchema = z.enum(SYNC_OBJECTS)

export const positionSchema = z.object({
  /** SystemModstamp as ISO-8601 UTC. */
  stamp: z.iso.datetime(),
  id: z.string().min(1).nullable(),
})
export type Position = z.infer<typeof positionSchema>

export const bulkStateSchema = z.object({
  /** The next results page; null for the first. */
  locator: z.string().min(1).nullable(),
  jobId: z.string().min(1),
  /** Rows read so far, and what the job said it found. */
  read: z.number().int().nonnegative(),
  expected: z.number().int().nonnegative(),
  /** When the job started: the object's position once every page is read. */
  since: z.iso.datetime(),
})
export type BulkState = z.infer<typeof bulkStateSchema>

export const cursorSchema = z.object({
  v: z.literal(2),
  object: objectSchema,
  position: positionSchema.nullable(),
  bulk: bulkStateSchema.optional(),
  quota: z.object({ used: z.number(), max: z.number() }).optional(),
})
export type SyncCursor = z.infer<typeof cursorSchema>

/** The cursor of a first (or full) read of an object: from scratch. */
export function initialCursor(object: SyncObject): SyncCursor {
  return { v: 2, object, position: null }
}

/** Parses a stream's stored cursor; null means from scratch. A damaged cursor names what is wrong. */
export function parseCursor(text: string | null, object: SyncObject): SyncCursor {
  if (text === null) return initialCursor(object)
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw unreadable('it is not JSON')
  }
  const parsed = cursorSchema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw unreadable(`"${issue?.path.join('.') ?? ''}" ${issue?.message ?? 'is invalid'}`)
  }
  if (parsed.data.object !== object) {
    throw unreadable(`it belongs to ${parsed.data.object}, not ${object}`)
  }
  return parsed.data
}

export function serializeCursor(cursor: SyncCursor): string {
  return JSON.stringify(cursor)
}

/** The cursor after a page whose last record was at `position` (null: where it was); any Bulk job is done with. */
export function advance(cursor: SyncCursor, position: Position | null): SyncCursor {
  const { bulk: _bulk, ...rest } = cursor
  return position ? { ...rest, position } : rest
}

const legacySchema = z.object({
  v: z.literal(1),
  positions: z.partialRecord(objectSchema, positionSchema),
})

/**
 * A version 1 cursor (all objects in one) as one cursor per object: each keeps its position, so
 * nothing is read again; a Bulk job in progress is dropped (its object resumes from its position).
 * An unreadable one yields nothing: every stream then starts from scratch.
 */
export function splitLegacyCursor(text: string): Partial<Record<SyncObject, string>> {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return {}
  }
  const parsed = legacySchema.safeParse(json)
  if (!parsed.success) return {}
  const split: Partial<Record<SyncObject, string>> = {}
  for (const object of SYNC_OBJECTS) {
    const position = parsed.data.positions[object]
    if (position) split[object] = serializeCursor({ v: 2, object, position })
  }
  return split
}

/**
 * Where the next pass over an object starts once this pass has read it to its end. A record's
 * SystemModstamp is set when its transaction writes it, not when it commits, so a change stamped
 * before the last record read may still have been in flight then, but only if it was stamped
 * within `lookbackMs` (the longest transaction) of the read's server time `readAt`. So: when the
 * last change read (`read`, or the page's start when its last page was empty) is older than
 * that, the exact keyset position; otherwise `readAt - lookbackMs`, inclusive, and that stretch
 * is read again (unchanged records write nothing). Without a server time, the look-back is taken
 * from the last change read.
 */
export function passEnd(
  start: Position | null,
  read: Position | null,
  readAt: number | undefined,
  lookbackMs: number,
): Position | null {
  const last = read ?? start
  if (!last || lookbackMs === 0) return last
  // Nothing new, and this pass already started at a look-back position: it stays.
  if (read === null && last.id === null) return last
  const stamp = Date.parse(last.stamp)
  const settled = (readAt ?? stamp) - lookbackMs
  if (stamp < settled) return last
  return { stamp: new Date(settled).toISOString(), id: null }
}

/** The keyset position of a record: its SystemModstamp (as ISO UTC) and Id. */
export function positionOf(record: Record<string, unknown>): Position | null {
  const stamp = record.SystemModstamp
  const id = record.Id
  if (typeof stamp !== 'string' || typeof id !== 'string') return null
  const ms = Date.parse(stamp)
  return Number.isNaN(ms) ? null : { stamp: new Date(ms).toISOString(), id }
}

/** Orders two positions: negative when `a` comes first. A missing id sorts before every id. */
export function comparePositions(a: Position, b: Position): number {
  const byStamp = Date.parse(a.stamp) - Date.parse(b.stamp)
  if (byStamp !== 0) return byStamp
  if (a.id === b.id) return 0
  if (a.id === null) return -1
  if (b.id === null) return 1
  return a.id < b.id ? -1 : 1
}

function unreadable(reason: string): AppError {
  return new AppError(
    'internal',
    `The stored Salesforce sync cursor cannot be read (${reason}). Run a full sync to start over.`,
  )
}
