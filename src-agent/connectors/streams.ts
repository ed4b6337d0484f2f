/**
 * The streams of a connector as the framework sees them: the ones it declares, or one implicit
 * stream for a connector that declares none.
 */
import { AppError } from '../../shared/errors.js'
import type { EntityType, FieldMapping } from '../../shared/schemas.js'
import type { AnyConnector, StreamDefinition } from './interface.js'

/** The one stream of a connector that declares none; its pages may mix entity types. */
export const DEFAULT_STREAM = 'records'

const streamId = /^[a-z][a-z0-9_]{0,62}$/

/** The connector's streams, in the order a sync reads them. */
export function streamsOf(connector: AnyConnector): readonly StreamDefinition[] {
  if (connector.streams && connector.streams.length > 0) return connector.streams
  return [
    {
      id: DEFAULT_STREAM,
      name: connector.name,
      entityType: connector.dataTypes[0] ?? 'activity',
    },
  ]
}

/** One stream by id; an unknown id names the streams that exist. */
export function findStream(connector: AnyConnector, id: string): StreamDefinition {
  const streams = streamsOf(connector)
  const stream = streams.find((s) => s.id === id)
  if (stream) return stream
  throw new AppError(
    'config_invalid',
    `${connector.name} has no stream "${id}". Its streams: ${streams.map((s) => s.id).join(', ')}.`,
  )
}

/** The connector's default mappings for records of `entityType` read by `stream`. */
export function defaultMappings(
  connector: AnyConnector,
  stream: StreamDefinition,
  entityType: EntityType,
): FieldMapping[] {
  if (stream.entityType === entityType && stream.defaultMappings) {
    return stream.defaultMappings.map((m) => ({ ...m }))
  }
  return connector.getSchema(entityType)
}

/**
 * Why a connector's streams cannot be registered, or undefined: ids must be well-formed and
 * distinct, each entity type must be one the connector produces, and two streams of one entity
 * type must not collide on (tenant_id, source, external_id) unless the connector says its ids are
 * unique across streams.
 */
export function checkStreams(connector: AnyConnector): string | undefined {
  const streams = connector.streams ?? []
  const seen = new Set<string>()
  const byType = new Map<EntityType, string>()
  for (const stream of streams) {
    if (!streamId.test(stream.id)) {
      return `stream id "${stream.id}" is not valid (lower-case letters, digits and _)`
    }
    if (seen.has(stream.id)) return `stream "${stream.id}" is declared twice`
    seen.add(stream.id)
    if (!connector.dataTypes.includes(stream.entityType)) {
      return `stream "${stream.id}" produces ${stream.entityType} records, which are not among its data types (${connector.dataTypes.join(', ')})`
    }
    if (stream.partitioned && !connector.listPartitions) {
      return `stream "${stream.id}" is partitioned but the connector has no listPartitions`
    }
    const other = byType.get(stream.entityType)
    if (other && !connector.idsUniqueAcrossStreams) {
      return `streams "${other}" and "${stream.id}" both produce ${stream.entityType} records: give their records distinct ids, and set idsUniqueAcrossStreams once they cannot collide`
    }
    byType.set(stream.entityType, stream.id)
  }
  return undefined
}
