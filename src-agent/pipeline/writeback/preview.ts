/**
 * A dry run of `writeback run`: the updates it would send now, each next to the source's current
 * values (read from the source; nothing is written there or in the queue).
 */
import { and, asc, sql } from 'drizzle-orm'
import { writebackQueue } from '../../../db/schema/index.js'
import { withTenant } from '../../../db/tenant.js'
import { ConfigError } from '../../../shared/errors.js'
import type { EntityType } from '../../../shared/schemas.js'
import type { WritebackPreview } from '../../connectors/interface.js'
import { credentialHooks } from '../credential-lock.js'
import { applyFieldMap, openWriteback, toItem, writebackConnector } from './config.js'
import type { WritebackDeps } from './send.js'
import { dueNow, pendingCounts } from './status.js'

/** What a dry run shows: each due item's change, and what waits because its type is disabled. */
export interface WritebackPreviewReport {
  /** Records with an update due now (of enabled types): what a real run would send. */
  queued: number
  /** The first `limit` of them (all without a limit), in queue order. */
  items: Array<WritebackPreview & { entityType: EntityType }>
  /** Pending items of entity types whose writeback is disabled, by type. */
  disabled: Partial<Record<EntityType, number>>
  /** Pending items waiting for a retry after a transient failure. */
  waiting: number
}

/**
 * A dry run of `writeback run`: the items it would send now, each with the source's current
 * values next to the new ones (read from the source, nothing written there or in the queue).
 */
export async function previewQueuedWriteback(
  deps: WritebackDeps,
  input: { tenantId: string; connectorType: string; signal?: AbortSignal; limit?: number },
): Promise<WritebackPreviewReport> {
  const { tenantId, connectorType } = input
  const { connector, capability } = writebackConnector(deps.registry, connectorType)
  if (!capability.preview) {
    throw new ConfigError(
      'config_invalid',
      `${connector.name} cannot preview a writeback (it has no dry run): its queued updates can only be sent.`,
    )
  }
  const { row, credentials, configs, due } = await withTenant(
    deps.handle.db,
    tenantId,
    async (tx) => {
      const opened = await openWriteback(tx, deps.keyring, tenantId, connector)
      const { enabled } = opened
      // The latest queued update of each record: what the record would end up with.
      const due =
        enabled.length === 0
          ? []
          : await tx
              .selectDistinctOn([writebackQueue.entityType, writebackQueue.externalId])
              .from(writebackQueue)
              .where(and(...dueNow(connectorType, enabled)))
              .orderBy(
                asc(writebackQueue.entityType),
                asc(writebackQueue.externalId),
                sql`${writebackQueue.seq} desc`,
              )
      return { ...opened, due }
    },
  )
  due.sort((a, b) => a.seq - b.seq)
  // Only the items shown are read from the source.
  const shown = input.limit === undefined ? due : due.slice(0, input.limit)
  const planned = shown.map((item) =>
    applyFieldMap(toItem(item), configs.get(item.entityType)!.fieldMap),
  )
  const sendable = planned.flatMap((p) => ('item' in p ? [p.item] : []))
  const log = deps.log.child({ tenantId, connector: connectorType })
  const previews =
    sendable.length === 0
      ? []
      : await capability.preview(credentials, sendable, {
          log,
          ...(input.signal ? { signal: input.signal } : {}),
          ...credentialHooks(deps, { tenantId, connector, connectorId: row.id }),
        })
  const items = planned.map((p, index) => {
    const { entityType, externalId } = shown[index]!
    const unwritable = (error: string) => ({
      entityType,
      externalId,
      objectType: null,
      found: false,
      changes: [],
      error,
    })
    if ('error' in p) return unwritable(p.error)
    const preview = previews.shift()
    return preview ? { entityType, ...preview } : unwritable('The source gave no preview of it.')
  })
  const counts = await pendingCounts(deps.handle, input)
  const disabled: Partial<Record<EntityType, number>> = {}
  for (const [type, config] of configs) {
    const count = counts.byType.get(type) ?? 0
    if (!config.enabled && count > 0) disabled[type] = count
  }
  return { queued: due.length, items, disabled, waiting: counts.waiting }
}
