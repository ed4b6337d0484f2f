/**
 * Writeback settings per tenant, connector type and entity type: whether that entity type is
 * written back to the source, and which of our fields land in which of the source's fields.
 * The connector's defaults apply until the tenant changes them (one writeback_configs row).
 */
import { and, eq, sql } from 'drizzle-orm'
import type { Db, Tx } from '../../db/client.js'
import { toDbError } from '../../db/errors.js'
import { writebackConfigs } from '../../db/schema/index.js'
import { withTenant } from '../../db/tenant.js'
import { AppError, ConfigError } from '../../shared/errors.js'
import {
  entityTypeSchema,
  writebackFieldMapSchema,
  type EntityType,
  type WritebackEntityConfig,
  type WritebackFieldMapping,
} from '../../shared/schemas.js'
import { recordAudit } from '../audit/audit.js'
import type { AnyConnector, WritebackCapability, WritebackItem } from '../connectors/interface.js'
import { connectorRegistry, type ConnectorRegistry } from '../connectors/registry.js'
import { requireTenant } from './tenants.js'

/** One entity type's writeback settings as a tenant sees them. */
export interface WritebackConfigView extends WritebackEntityConfig {
  connectorType: string
  /** True while the tenant has not changed the connector's defaults. */
  isDefault: boolean
}

export interface WritebackConfigTarget {
  tenantId: string
  connectorType: string
  entityType: EntityType
  /** Defaults to the process-wide registry. */
  registry?: ConnectorRegistry
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
  for (const [entityType, defaults] of entries(capability)) {
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

/** The settings of every entity type the connector can write back. */
export async function listWritebackConfigs(
  db: Db,
  target: Omit<WritebackConfigTarget, 'entityType'>,
): Promise<WritebackConfigView[]> {
  const { connector } = writebackConnector(
    target.registry ?? connectorRegistry,
    target.connectorType,
  )
  return guard(target, 'reading', () =>
    withTenant(db, target.tenantId, async (tx) => {
      await requireTenant(tx, target.tenantId)
      return [...(await loadWritebackConfigs(tx, target.tenantId, connector)).values()]
    }),
  )
}

/**
 * Changes one entity type's settings: `enabled` and/or `fieldMap` (a list of
 * `{ canonicalField, targetField }`, or `{ "fieldMap": [...] }` as `writeback config` prints it).
 * What is not given keeps its current value. An invalid field map stores nothing and the error
 * names the entry. A change is audited; a no-op is not stored.
 */
export async function setWritebackConfig(
  db: Db,
  input: WritebackConfigTarget & { enabled?: boolean; fieldMap?: unknown; userId: string },
): Promise<WritebackConfigView & { changed: boolean }> {
  const { connector, capability } = writebackConnector(
    input.registry ?? connectorRegistry,
    input.connectorType,
  )
  const entityType = supportedEntityType(connector, capability, input.entityType)
  const fieldMap =
    input.fieldMap === undefined ? undefined : checkFieldMap(capability, input.fieldMap)
  return guard(input, 'storing', () =>
    withTenant(db, input.tenantId, async (tx) => {
      await requireTenant(tx, input.tenantId)
      const current = (await loadWritebackConfigs(tx, input.tenantId, connector)).get(entityType)!
      const next = {
        enabled: input.enabled ?? current.enabled,
        fieldMap: fieldMap ?? current.fieldMap,
      }
      if (next.enabled && next.fieldMap.length === 0) {
        throw new ConfigError(
          'config_invalid',
          `${connector.name} ${entityType} writeback cannot be enabled with an empty field map: give it at least one { canonicalField, targetField }.`,
        )
      }
      const changed =
        current.isDefault ||
        next.enabled !== current.enabled ||
        JSON.stringify(next.fieldMap) !== JSON.stringify(current.fieldMap)
      if (!changed || (input.enabled === undefined && fieldMap === undefined)) {
        return { ...current, changed: false }
      }
      const [row] = await tx
        .insert(writebackConfigs)
        .values({ tenantId: input.tenantId, connectorType: connector.id, entityType, ...next })
        .onConflictDoUpdate({
          target: [
            writebackConfigs.tenantId,
            writebackConfigs.connectorType,
            writebackConfigs.entityType,
          ],
          set: { ...next, updatedAt: sql`now()` },
        })
        .returning({ id: writebackConfigs.id })
      await recordAudit(tx, {
        tenantId: input.tenantId,
        userId: input.userId,
        action: 'writeback.config',
        resource: 'writeback_config',
        resourceId: row?.id ?? null,
        before: { enabled: current.enabled, fieldMap: current.fieldMap },
        after: next,
        metadata: { connectorType: connector.id, entityType },
      })
      return {
        connectorType: connector.id,
        entityType,
        ...next,
        isDefault: false,
        changed: true,
      }
    }),
  )
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

// --- implementation ---

type Defaults = { enabled: boolean; fieldMap: WritebackFieldMapping[] }

function entries(capability: WritebackCapability): Array<[EntityType, Defaults]> {
  return entityTypeSchema.options.flatMap((entityType): Array<[EntityType, Defaults]> => {
    const defaults = capability.defaults[entityType]
    return defaults ? [[entityType, defaults]] : []
  })
}

function supportedEntityType(
  connector: AnyConnector,
  capability: WritebackCapability,
  value: unknown,
): EntityType {
  const supported = entries(capability).map(([type]) => type)
  const parsed = entityTypeSchema.safeParse(value)
  if (parsed.success && supported.includes(parsed.data)) return parsed.data
  throw new ConfigError(
    'config_invalid',
    `${connector.name} cannot write back ${String(value)} records; it writes back: ${supported.join(', ')}.`,
  )
}

function checkFieldMap(capability: WritebackCapability, value: unknown): WritebackFieldMapping[] {
  const list =
    typeof value === 'object' && value !== null && !Array.isArray(value) && 'fieldMap' in value
      ? value.fieldMap
      : value
  const fieldMap = parseFieldMap(list, 'The field map')
  fieldMap.forEach((m, index) => {
    const problem = capability.checkTargetField?.(m.targetField)
    if (problem) {
      throw new ConfigError('config_invalid', `The field map's entry ${index}: ${problem}`)
    }
  })
  return fieldMap
}

function parseFieldMap(value: unknown, what: string): WritebackFieldMapping[] {
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

async function guard<T>(
  target: { tenantId: string; connectorType: string },
  doing: string,
  fn: () => Promise<T>,
): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (err instanceof AppError) throw err
    throw toDbError(
      err,
      `${doing} ${target.connectorType} writeback settings of tenant "${target.tenantId}"`,
    )
  }
}
