/**
 * Reading writeback settings per tenant, connector type and entity type: whether that entity
 * type is written back, and which of our fields land in which of the source's fields. The
 * connector's defaults apply until the tenant changes them (services/writeback-config.ts).
 */
import { and, eq } from 'drizzle-orm'
import type { Tx } from '../../../db/client.js'
import { writebackConfigs, type writebackQueue } from '../../../db/schema/index.js'
import { ConfigError } from '../../../shared/errors.js'
import {
  entityTypeSchema,
  writebackFieldMapSchema,
  type EntityType,
  type WritebackEntityConfig,
  type WritebackFieldMapping,
} from '../../../shared/schemas.js'
import type {
  AnyConnector,
  WritebackCapability,
  WritebackItem,
} from '../../connectors/interface.js'
import type { ConnectorRegistry } from '../../connectors/registry.js'
import type { Keyring } from '../../secrets/crypto.js'
import { openConnectorConnection } from '../connection.js'

/** One entity type's writeback settings as a tenant sees them. */
export interface WritebackConfigView extends WritebackEntityConfig {
  connectorType: string
  /** True while the tenant has not changed the connector's defaults. */
  isDefault: boolean
}

/** The connector and its writeback capability; a clear error when it cannot write back. */
export function writebackConnector(
  registry: ConnectorRegistry,
  connectorType: string,
): { connector: AnyConnector; capability: WritebackCapability } {
  const connector = registry.get(connectorType)
  return { connector, capability: requireWriteback(connector) }
}

/** The connector's writeback capability, or an error saying it has none. */
export function requireWriteback(connector: AnyConnector): WritebackCapability {
  if (!connector.writeback) {
    throw new ConfigError(
      'config_invalid',
      `${connector.name} cannot write updates back to its source.`,
    )
  }
  return connector.writeback
}

/**
 * Every entity type the connector can write, with the tenant's settings (or the defaults),
 * inside the caller's tenant transaction.
 */
export async function loadWritebackConfigs(
  tx: Tx,
  tenantId: string,
  connector: AnyConnector,
): Promise<Map<EntityType, WritebackConfigView>> {
  const capability = connector.writeback
  const configs = new Map<EntityType, WritebackConfigView>()
  if (!capability) return configs
  for (const [entityType, defaults] of writebackDefaults(capability)) {
    configs.set(entityType, {
      connectorType: connector.id,
      entityType,
      enabled: defaults.enabled,
      fieldMap: defaults.fieldMap.map((m) => ({ ...m })),
      isDefault: true,
    })
  }
  const rows = await tx
    .select()
    .from(writebackConfigs)
    .where(
      and(
        eq(writebackConfigs.tenantId, tenantId),
        eq(writebackConfigs.connectorType, connector.id),
      ),
    )
  for (const row of rows) {
    if (!configs.has(row.entityType)) continue
    // The column is jsonb: check it, so a hand-edited row fails here naming the field.
    const fieldMap = parseFieldMap(row.fieldMap, `the stored ${row.entityType} writeback field map`)
    configs.set(row.entityType, {
      connectorType: connector.id,
      entityType: row.entityType,
      enabled: row.enabled,
      fieldMap,
      isDefault: false,
    })
  }
  return configs
}

/**
 * An item with our field names turned into the source's by the field map. Fields the map does
 * not name are left out; an item with none of its fields in the map cannot be written.
 */
export function applyFieldMap(
  item: WritebackItem,
  fieldMap: readonly WritebackFieldMapping[],
): { item: WritebackItem } | { error: string } {
  const fields: Record<string, unknown> = {}
  for (const { canonicalField, targetField } of fieldMap) {
    if (Object.hasOwn(item.fields, canonicalField))
      fields[targetField] = item.fields[canonicalField]
  }
  if (Object.keys(fields).length > 0) return { item: { ...item, fields } }
  const given = Object.keys(item.fields)
  return {
    error:
      `None of its fields (${given.join(', ') || 'none'}) is in the ${item.entityType} writeback field map ` +
      `(${fieldMap.map((m) => m.canonicalField).join(', ') || 'empty'}).`,
  }
}

export type WritebackDefaults = { enabled: boolean; fieldMap: WritebackFieldMapping[] }

/** The entity types the connector can write back, with its default settings for each. */
export function writebackDefaults(
  capability: WritebackCapability,
): Array<[EntityType, WritebackDefaults]> {
  return entityTypeSchema.options.flatMap((entityType): Array<[EntityType, WritebackDefaults]> => {
    const defaults = capability.defaults[entityType]
    return defaults ? [[entityType, defaults]] : []
  })
}

/** A stored or given field map, checked; the error names `what` and the bad entry. */
export function parseFieldMap(value: unknown, what: string): WritebackFieldMapping[] {
  if (!Array.isArray(value)) {
    throw new ConfigError(
      'config_invalid',
      `${what} must be a list of { "canonicalField", "targetField" } (or { "fieldMap": [...] }).`,
    )
  }
  const parsed = writebackFieldMapSchema.safeParse(value)
  if (parsed.success) return parsed.data
  const issue = parsed.error.issues[0]
  const [index, key] = issue?.path ?? []
  const where =
    index === undefined
      ? ''
      : `'s entry ${String(index)}${key === undefined ? '' : ` ${String(key)}`}`
  throw new ConfigError('config_invalid', `${what}${where}: ${issue?.message ?? 'invalid'}.`)
}

/** A row of writeback_queue. */
export type QueueRow = typeof writebackQueue.$inferSelect

export /** The connection's row and credentials, and its writeback settings, in a tenant transaction. */
async function openWriteback(tx: Tx, keyring: Keyring, tenantId: string, connector: AnyConnector) {
  const opened = await openConnectorConnection(tx, keyring, tenantId, connector)
  const configs = await loadWritebackConfigs(tx, tenantId, connector)
  return { ...opened, configs, enabled: enabledTypes(configs) }
}

/** The entity types whose writeback is enabled. */
export function enabledTypes(configs: Map<EntityType, WritebackConfigView>): EntityType[] {
  return [...configs.values()].filter((c) => c.enabled).map((c) => c.entityType)
}

/** A queued row as the connector's item, with our field names (applyFieldMap turns them into its). */
export function toItem(row: QueueRow): WritebackItem {
  return { entityType: row.entityType, externalId: row.externalId, fields: row.fields }
}
