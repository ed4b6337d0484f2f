/**
 * The Salesforce-style writeback dry run for the app: the updates queued now, each with the
 * source's current values next to the new ones. Reads the source; writes nothing.
 */
import type { EntityType } from '../../shared/schemas.js'
import { previewQueuedWriteback } from '../pipeline/writeback/preview.js'
import type { WritebackDeps } from '../pipeline/writeback/send.js'

export interface WritebackPreviewView {
  /** Records with an update due now: what a real writeback would send. */
  queued: number
  items: Array<{
    entityType: EntityType
    externalId: string
    objectType: string | null
    found: boolean
    changes: Array<{ field: string; from: unknown; to: unknown }>
    error: string | null
  }>
}

/** The first `limit` queued updates against the source's values; a connector without a dry run throws. */
export async function previewWriteback(
  deps: WritebackDeps,
  input: { tenantId: string; connectorType: string; limit: number; signal?: AbortSignal },
): Promise<WritebackPreviewView> {
  const report = await previewQueuedWriteback(deps, input)
  return {
    queued: report.queued,
    items: report.items.map((item) => ({
      entityType: item.entityType,
      externalId: item.externalId,
      objectType: item.objectType,
      found: item.found,
      changes: item.changes,
      error: item.error ?? null,
    })),
  }
}
