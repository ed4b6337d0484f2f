/**
 * A stream's first page, read while the stream before it is still being read. A source that
 * prepares a read before it serves any of it (Salesforce runs a Bulk query job first, for
 * seconds to minutes on a large object) then does so while the sync has other work, not while
 * it waits. The page asked for is the smallest the source gives (one record where it takes a
 * page size): what counts is that the source has started, not holding its records meanwhile.
 * Nothing is written here: the stream's run, once it starts, takes the page as its own first
 * fetch if it reads from the same cursor (and goes on from the cursor after it, at its own page
 * size), and reads it again otherwise.
 */
import type { DbHandle } from '../../db/client.js'
import { withTenant } from '../../db/tenant.js'
import type { SyncResult } from '../../shared/schemas.js'
import type { ConnectorRegistry } from '../connectors/registry.js'
import type { RetryEvent } from '../connectors/retry.js'
import type { Logger } from '../logging/logger.js'
import type { Keyring } from '../secrets/crypto.js'
import { openConnectorConnection } from './connection.js'
import { credentialHooks } from './credential-lock.js'
import { fetchPage } from './fetch-page.js'
import { streamCursor } from './stream-state.js'

export interface PageAhead {
  readonly stream: string
  /**
   * The page and the cursor it was read from, or null when it was not read (a connection whose
   * cursor still has to be moved into its streams); rejects as the read failed.
   */
  readonly read: Promise<{ from: string | null; page: SyncResult } | null>
  /** The retries the read met (counted on the run that takes the page). */
  readonly retries: readonly RetryEvent[]
  /** Drops the read: a request in flight is aborted. */
  discard(): void
}

/**
 * Starts reading `stream`'s first page as its run will: from scratch for a full sync, else
 * from the stream's committed cursor. Stopping or cancelling the sync drops the read.
 */
export function readAhead(
  deps: { handle: DbHandle; keyring: Keyring; registry: ConnectorRegistry; log: Logger },
  request: {
    tenantId: string
    connectorType: string
    stream: string
    full?: boolean
    signal?: AbortSignal
    stop?: AbortSignal
  },
): PageAhead {
  const { tenantId, connectorType, stream } = request
  const connector = deps.registry.get(connectorType)
  const controller = new AbortController()
  const discard = (): void => controller.abort()
  request.signal?.addEventListener('abort', discard, { once: true })
  request.stop?.addEventListener('abort', discard, { once: true })
  const retries: RetryEvent[] = []
  const read = (async () => {
    const opened = await withTenant(deps.handle.db, tenantId, async (tx) => {
      const connection = await openConnectorConnection(tx, deps.keyring, tenantId, connector)
      const key = { tenantId, connectorId: connection.row.id, stream }
      const from = request.full ? null : await streamCursor(tx, key)
      return { ...connection, from }
    })
    // The run moves such a cursor into its streams first; what it then reads from is not known.
    if (opened.row.cursor !== null && !request.full) return null
    const hooks = credentialHooks(deps, { tenantId, connector, connectorId: opened.row.id })
    const page = await fetchPage(connector, opened.credentials, opened.from, {
      ...(request.full ? { full: true } : {}),
      pageSize: 1,
      signal: controller.signal,
      stream,
      log: deps.log.child({ tenantId, connector: connectorType, stream, readAhead: true }),
      ...hooks,
      onRetry: (event) => retries.push(event),
      labels: { tenant: tenantId, connector: connectorType },
    })
    return { from: opened.from, page }
  })()
  // Awaited by the run that takes it, if any; until then a failure must not count as unhandled.
  read
    .finally(() => {
      request.signal?.removeEventListener('abort', discard)
      request.stop?.removeEventListener('abort', discard)
    })
    .catch(() => undefined)
  return { stream, read, retries, discard }
}
