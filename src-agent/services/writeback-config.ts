/**
 * Changing writeback settings per tenant, connector type and entity type: whether that entity
 * type is written back to the source, and which of our fields land in which of the source's
 * fields. The connector's defaults apply until the tenant changes them (one writeback_configs
 * row); pipeline/writeback/config.ts reads them.
 */
import { sql } from 'drizzle-orm'
import type { Db } from '../../db/client.js'
import { toDbError } from '../../db/errors.js'
import { writebackConfigs } from '../../db/schema/index.js'
import { withTenant } from '../../db/tenant.js'
import { AppError, ConfigError } from '../../shared/errors.js'
import {
  entityTypeSchema,
  type EntityType,
  type WritebackFieldMapping,
} from '../../shared/schemas.js'
import { recordAudit } from '../audit/audit.js'
import type { AnyConnector, WritebackCapability } from '../connectors/interface.js'
import { connectorRegistry, type ConnectorRegistry } from '../connectors/registry.js'
import { requireTenant } from '../pipeline/tenants.js'
import {
  loadWritebackConfigs,
  parseFieldMap,
  writebackConnector,
  writebackDefaults,
  type WritebackConfigView,
} from '../pipeline/writeback/config.js'

export interface WritebackConfigTarget {
  tenantId: string
  connectorType: string
  entityType: EntityType
  /** Defaults to the process-wide registry. */
  registry?: ConnectorRegistry
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

// --- implementation ---

function supportedEntityType(
  connector: AnyConnector,
  capability: WritebackCapability,
  value: unknown,
): EntityType {
  const supported = writebackDefaults(capability).map(([type]) => type)
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
