/**
 * Field mappings per tenant, connector and entity type: the connector's defaults overlaid by the
 * tenant's overrides (one field_mappings row). A sync reads them through pipeline/stored-mappings.ts.
 */
import { eq, sql } from 'drizzle-orm'
import type { Db, Tx } from '../../db/client.js'
import { toDbError } from '../../db/errors.js'
import { fieldMappings } from '../../db/schema/index.js'
import { withTenant } from '../../db/tenant.js'
import { AppError, ConfigError } from '../../shared/errors.js'
import { entityTypeSchema, type EntityType, type FieldMapping } from '../../shared/schemas.js'
import { recordAudit } from '../audit/audit.js'
import type { AnyConnector } from '../connectors/interface.js'
import { connectorRegistry, type ConnectorRegistry } from '../connectors/registry.js'
import { defaultMappings, findStream } from '../connectors/streams.js'
import { findConnection, type ConnectorRow } from '../pipeline/connection.js'
import { mergeMappings, validateMappings } from '../pipeline/mapping.js'
import { readOverrides } from '../pipeline/stream-state.js'
import { requireTenant } from '../pipeline/tenants.js'

/** A connector's mappings for one entity type, as the tenant sees them. */
export interface MappingView {
  defaults: FieldMapping[]
  overrides: FieldMapping[]
  /** What a sync uses: the defaults with the overrides laid over them. */
  effective: FieldMapping[]
}

export interface MappingTarget {
  tenantId: string
  connectorType: string
  entityType: EntityType
  /** One stream's overrides, which win over the entity type's; omitted: every stream of it. */
  stream?: string
  /** Defaults to the process-wide registry. */
  registry?: ConnectorRegistry
}

/** The defaults, the tenant's overrides and the effective result. */
export async function getMappings(db: Db, target: MappingTarget): Promise<MappingView> {
  const connector = (target.registry ?? connectorRegistry).get(target.connectorType)
  const entityType = parseEntityType(target.entityType)
  const scope = streamScope(connector, target.stream, entityType)
  return withTenant(db, target.tenantId, async (tx) => {
    const row = await requireConnection(tx, target)
    const overrides = (await readOverrides(tx, row.id, entityType, scope.stream))?.mappings ?? []
    return view(await scope.defaults(tx, row.id), overrides)
  })
}

/**
 * Replaces the tenant's overrides for one entity type. The merged result must be a valid,
 * complete mapping; otherwise nothing is stored and the error names the field.
 */
export async function setMappings(
  db: Db,
  input: MappingTarget & { mappings: unknown; userId: string },
): Promise<MappingView> {
  const connector = (input.registry ?? connectorRegistry).get(input.connectorType)
  const entityType = parseEntityType(input.entityType)
  if (!connector.dataTypes.includes(entityType)) {
    throw new ConfigError(
      'mapping_invalid',
      `${connector.id} does not produce ${entityType} records (it produces: ${connector.dataTypes.join(', ')}).`,
    )
  }
  const scope = streamScope(connector, input.stream, entityType)
  const overrides = validateMappings(entityType, unwrap(input.mappings), { partial: true })
  return guard(input, 'storing', () =>
    withTenant(db, input.tenantId, async (tx) => {
      const connection = await requireConnection(tx, input)
      const defaults = await scope.defaults(tx, connection.id)
      validateMappings(entityType, mergeMappings(defaults, overrides))
      const before = await readOverrides(tx, connection.id, entityType, scope.stream)
      const [row] = await tx
        .insert(fieldMappings)
        .values({
          tenantId: input.tenantId,
          connectorId: connection.id,
          entityType,
          stream: scope.stream,
          mappings: overrides,
          isDefault: false,
        })
        .onConflictDoUpdate({
          target: [
            fieldMappings.tenantId,
            fieldMappings.connectorId,
            fieldMappings.entityType,
            fieldMappings.stream,
          ],
          set: { mappings: overrides, isDefault: false, updatedAt: sql`now()` },
        })
        .returning({ id: fieldMappings.id })
      await recordAudit(tx, {
        tenantId: input.tenantId,
        userId: input.userId,
        action: 'mapping.update',
        resource: 'field_mapping',
        resourceId: row?.id ?? null,
        before: before?.mappings ?? [],
        after: overrides,
        metadata: {
          connectorType: input.connectorType,
          entityType,
          ...(input.stream ? { stream: input.stream } : {}),
        },
      })
      return view(defaults, overrides)
    }),
  )
}

/** Drops the tenant's overrides for one entity type, so the connector's defaults apply again. */
export async function resetMappings(
  db: Db,
  input: MappingTarget & { userId: string },
): Promise<MappingView & { removed: boolean }> {
  const connector = (input.registry ?? connectorRegistry).get(input.connectorType)
  const entityType = parseEntityType(input.entityType)
  const scope = streamScope(connector, input.stream, entityType)
  return guard(input, 'resetting', () =>
    withTenant(db, input.tenantId, async (tx) => {
      const connection = await requireConnection(tx, input)
      const defaults = await scope.defaults(tx, connection.id)
      const before = await readOverrides(tx, connection.id, entityType, scope.stream)
      if (!before) return { ...view(defaults, []), removed: false }
      await tx.delete(fieldMappings).where(eq(fieldMappings.id, before.id))
      await recordAudit(tx, {
        tenantId: input.tenantId,
        userId: input.userId,
        action: 'mapping.reset',
        resource: 'field_mapping',
        resourceId: before.id,
        before: before.mappings,
        after: [],
        metadata: {
          connectorType: input.connectorType,
          entityType,
          ...(input.stream ? { stream: input.stream } : {}),
        },
      })
      return { ...view(defaults, []), removed: true }
    }),
  )
}

// --- implementation ---

/**
 * Where overrides are kept: for every stream of the entity type (stream ''), whose defaults are
 * the connector's, or for one stream, whose defaults are the stream's with the entity-wide
 * overrides laid over them.
 */
function streamScope(
  connector: AnyConnector,
  streamId: string | undefined,
  entityType: EntityType,
): { stream: string; defaults: (tx: Tx, connectorId: string) => Promise<FieldMapping[]> } {
  if (streamId === undefined) {
    return { stream: '', defaults: () => Promise.resolve(connector.getSchema(entityType)) }
  }
  const stream = findStream(connector, streamId)
  if (stream.entityType !== entityType && connector.streams) {
    throw new ConfigError(
      'mapping_invalid',
      `${connector.name}'s stream "${stream.id}" produces ${stream.entityType} records, not ${entityType}.`,
    )
  }
  return {
    stream: stream.id,
    defaults: async (tx, connectorId) => {
      const shared = (await readOverrides(tx, connectorId, entityType, ''))?.mappings ?? []
      return mergeMappings(defaultMappings(connector, stream, entityType), shared)
    },
  }
}

async function requireConnection(tx: Tx, target: MappingTarget): Promise<ConnectorRow> {
  await requireTenant(tx, target.tenantId)
  const row = await findConnection(tx, target.tenantId, target.connectorType)
  if (!row) {
    throw new AppError(
      'connector_not_connected',
      `${target.connectorType} is not connected for tenant "${target.tenantId}". Connect it first with: gtm-agent connect ${target.connectorType} --tenant ${target.tenantId} --config <file.json>`,
    )
  }
  return row
}

function view(defaults: FieldMapping[], overrides: FieldMapping[]): MappingView {
  return { defaults, overrides, effective: mergeMappings(defaults, overrides) }
}

function parseEntityType(value: unknown): EntityType {
  const result = entityTypeSchema.safeParse(value)
  if (result.success) return result.data
  throw new ConfigError(
    'config_invalid',
    `"${String(value)}" is not an entity type. Use one of: ${entityTypeSchema.options.join(', ')}.`,
  )
}

/** A mappings file may hold the list itself or `{ "mappings": [...] }` (what `get` prints). */
function unwrap(mappings: unknown): unknown {
  if (
    typeof mappings === 'object' &&
    mappings !== null &&
    !Array.isArray(mappings) &&
    'mappings' in mappings
  ) {
    return mappings.mappings
  }
  return mappings
}

async function guard<T>(target: MappingTarget, doing: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    if (err instanceof AppError) throw err
    throw toDbError(
      err,
      `${doing} ${target.connectorType} ${target.entityType} mappings of tenant "${target.tenantId}"`,
    )
  }
}
