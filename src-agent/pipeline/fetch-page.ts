import { VendorError } from '../../shared/errors.js'
import {
  isPlainSourceRecord,
  sourceRecordSchema,
  type SourceRecord,
  type SyncResult,
  type UnreadRecords,
} from '../../shared/schemas.js'
import type { AnyConnector, Credentials } from '../connectors/interface.js'

/**
 * One page from the connector, its envelope checked and every record parsed: those in `records`
 * now, those still `unread` as they are read.
 */
export async function fetchPage(
  connector: AnyConnector,
  credentials: Credentials,
  cursor: string | null,
  options: Parameters<AnyConnector['sync']>[2],
): Promise<SyncResult> {
  const page = await connector.sync(credentials, cursor, options)
  if (!page || !Array.isArray(page.records) || typeof page.hasMore !== 'boolean') {
    throw malformed(connector, 'a malformed page')
  }
  if (page.cursor !== null && typeof page.cursor !== 'string') {
    throw malformed(connector, 'a cursor that is not a string')
  }
  page.records.forEach((record, index) => checkSourceRecord(connector, record, index))
  const { expected, unread, ...rest } = page
  return {
    ...rest,
    // Only a progress hint: a size that is no count is dropped, never a reason to fail the page.
    ...(expected !== undefined && Number.isSafeInteger(expected) && expected >= 0
      ? { expected }
      : {}),
    ...(unread === undefined ? {} : { unread: checkedUnread(connector, unread, page.records) }),
  }
}

/** The records of `unread`, each checked as it is read, at its position after `records`. */
function checkedUnread(
  connector: AnyConnector,
  unread: UnreadRecords,
  records: readonly SourceRecord[],
): UnreadRecords {
  const { count } = unread
  if (!Number.isSafeInteger(count) || count < 0 || typeof unread.read !== 'function') {
    throw malformed(connector, 'a malformed page')
  }
  let position = records.length
  return {
    count,
    read: (max) => {
      const read = unread.read(max)
      if (!Array.isArray(read)) throw malformed(connector, 'a malformed page')
      for (const record of read) checkSourceRecord(connector, record, position++)
      return read
    },
  }
}

function checkSourceRecord(connector: AnyConnector, record: unknown, index: number): void {
  if (isPlainSourceRecord(record)) return
  const parsed = sourceRecordSchema.safeParse(record)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw malformed(
      connector,
      `a malformed record at position ${index}: ${issue?.path.join('.') ?? ''} ${issue?.message ?? ''}`.trim(),
    )
  }
}

function malformed(connector: AnyConnector, what: string): VendorError {
  return new VendorError('vendor_bad_response', `${connector.name} returned ${what}.`, {
    retryable: false,
  })
}

/**
 * The page's records a slice at a time: `read(max)` hands over the next ones, those in `records`
 * first, then those still unread; none at the end.
 */
export function pageRecords(page: SyncResult): (max: number) => readonly SourceRecord[] {
  let at = 0
  return (max) => {
    if (at < page.records.length) {
      const slice = page.records.slice(at, at + max)
      at += slice.length
      return slice
    }
    return page.unread?.read(max) ?? []
  }
}

/** How many records the page holds, read or not. */
export function pageSize(page: SyncResult): number {
  return page.records.length + (page.unread?.count ?? 0)
}

/** The page with every record read out (none left unread). */
export function withAllRecords(page: SyncResult): SyncResult {
  const { unread, ...rest } = page
  if (!unread) return page
  const read = pageRecords(page)
  const records: SourceRecord[] = []
  for (let slice = read(1_000); slice.length > 0; slice = read(1_000)) records.push(...slice)
  return { ...rest, records }
}
