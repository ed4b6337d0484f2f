/**
 * The Salesforce sync cursor: a JSON string the pipeline stores with each committed page.
 *
 * A pass reads the objects in SYNC_OBJECTS order; `next` is the object being read. Each object
 * has a keyset position (SystemModstamp, Id): every record ordered at or before it has been
 * read, so the next query asks for `SystemModstamp > W OR (SystemModstamp = W AND Id > lastId)`
 * and records sharing a timestamp across a page boundary are neither lost nor read twice. A
 * position without an id means "from W inclusive": a look-back, set at the end of a pass whose
 * last changes were too recent to rule out a later commit stamped before them (passEnd).
 * While a Bulk job's results are read, `bulk` holds the job and the next result locator.
 * `quota` marks that the last page pushed API usage past the threshold.
 */
import { z } from 'zod'
import { AppError } from '../../../shared/errors.js'

/** What a pass reads, in order: accounts first, so people and activities find them. */
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
  object: objectSchema,
  jobId: z.string().min(1),
  /** The next results page; null for the first. */
  locator: z.string().min(1).nullable(),
  /** Rows read so far, and what the job said it found. */
  read: z.number().int().nonnegative(),
  expected: z.number().int().nonnegative(),
  /** When the job started: the object's position once every page is read. */
  since: z.iso.datetime(),
})
export type BulkState = z.infer<typeof bulkStateSchema>

export const cursorSchema = z.object({
  v: z.literal(1),
  next: z
    .number()
    .int()
    .min(0)
    .max(SYNC_OBJECTS.length - 1),
  positions: z.partialRecord(objectSchema, positionSchema),
  bulk: bulkStateSchema.optional(),
  quota: z.object({ used: z.number(), max: z.number() }).optional(),
})
export type SyncCursor = z.infer<typeof cursorSchema>

/** The cursor of a first (or full) sync: every object from scratch. */
export function initialCursor(): SyncCursor {
  return { v: 1, next: 0, positions: {} }
}

/** Parses a stored cursor; null means from scratch. A damaged cursor names what is wrong. */
export function parseCursor(text: string | null): SyncCursor {
  if (text === null) return initialCursor()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw unreadable('it is not JSON')
  }
  const parsed = cursorSchema.safeParse(json)
  if (parsed.success) return parsed.data
  const issue = parsed.error.issues[0]
  throw unreadable(`"${issue?.path.join('.') ?? ''}" ${issue?.message ?? 'is invalid'}`)
}

export function serializeCursor(cursor: SyncCursor): string {
  return JSON.stringify(cursor)
}

/** The object the cursor is reading. */
export function currentObject(cursor: SyncCursor): SyncObject {
  return SYNC_OBJECTS[cursor.next]!
}

/** The cursor after a page of `object` whose last record was at `position` (more may follow). */
export function advance(
  cursor: SyncCursor,
  object: SyncObject,
  position: Position | null,
): SyncCursor {
  const { bulk: _bulk, ...rest } = cursor
  return position ? { ...rest, positions: { ...cursor.positions, [object]: position } } : rest
}

/**
 * The cursor after the current object was read to its end; `passComplete` when it was the last
 * object (the cursor then points at the first again, for the next run).
 */
export function finishObject(
  cursor: SyncCursor,
  position: Position | null,
): { cursor: SyncCursor; passComplete: boolean } {
  const moved = advance(cursor, currentObject(cursor), position)
  const passComplete = cursor.next === SYNC_OBJECTS.length - 1
  return { cursor: { ...moved, next: passComplete ? 0 : cursor.next + 1 }, passComplete }
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
