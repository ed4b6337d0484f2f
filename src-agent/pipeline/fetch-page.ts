import { VendorError } from '../../shared/errors.js'
import { isPlainSourceRecord, sourceRecordSchema, type SyncResult } from '../../shared/schemas.js'
import type { AnyConnector, Credentials } from '../connectors/interface.js'

/** One page from the connector, its envelope checked and every record parsed. */
export async function fetchPage(
  connector: AnyConnector,
  credentials: Credentials,
  cursor: string | null,
  options: Parameters<AnyConnector['sync']>[2],
): Promise<SyncResult> {
  const page = await connector.sync(credentials, cursor, options)
  if (!page || !Array.isArray(page.records) || typeof page.hasMore !== 'boolean') {
    throw new VendorError('vendor_bad_response', `${connector.name} returned a malformed page.`, {
      retryable: false,
    })
  }
  if (page.cursor !== null && typeof page.cursor !== 'string') {
    throw new VendorError(
      'vendor_bad_response',
      `${connector.name} returned a cursor that is not a string.`,
      {
        retryable: false,
      },
    )
  }
  for (const [index, record] of page.records.entries()) {
    if (isPlainSourceRecord(record)) continue
    const parsed = sourceRecordSchema.safeParse(record)
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      throw new VendorError(
        'vendor_bad_response',
        `${connector.name} returned a malformed record at position ${index}: ${issue?.path.join('.') ?? ''} ${issue?.message ?? ''}`.trim(),
        { retryable: false },
      )
    }
  }
  // Only a progress hint: a size that is no count is dropped, never a reason to fail the page.
  if (page.expected !== undefined && !(Number.isSafeInteger(page.expected) && page.expected >= 0)) {
    const { expected: _dropped, ...rest } = page
    return rest
  }
  return page
}
