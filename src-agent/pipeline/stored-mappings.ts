/**
 * A tenant's stored field mappings (one field_mappings row per connection and entity type):
 * what a sync maps records with, and what `mappings` commands change (services/mappings.ts).
 */
import { and, eq } from 'drizzle-orm'
import type { Tx } from '../../db/client.js'
import { fieldMappings } from '../../db/schema/index.js'
import type { EntityType, FieldMapping } from '../../shared/schemas.js'
import type { AnyConnector } from '../connectors/interface.js'
import { mergeMappings, validateMappings } from './mapping.js'

/** The effective mappings a sync uses, inside the caller's tenant transaction. */
export async function loadMappings(
  tx: Tx,
  connector: AnyConnector,
  connectorId: string,
  entityType: EntityType,
): Promise<FieldMapping[]> {
  const overrides = await readOverrides(tx, connectorId, entityType)
  return mergeMappings(connector.getSchema(entityType), overrides?.mappings ?? [])
}

/** The tenant's overrides of one entity type (checked), or undefined when it has none. */
export async function readOverrides(
  tx: Tx,
  connectorId: string,
  entityType: EntityType,
): Promise<{ id: string; mappings: FieldMapping[] } | undefined> {
  const [row] = await tx
    .select({ id: fieldMappings.id, mappings: fieldMappings.mappings })
    .from(fieldMappings)
    .where(
      and(eq(fieldMappings.connectorId, connectorId), eq(fieldMappings.entityType, entityType)),
    )
  if (!row) return undefined
  // The column is jsonb: check it, so a hand-edited row fails here naming the field.
  return { id: row.id, mappings: validateMappings(entityType, row.mappings, { partial: true }) }
}
