/**
 * Queueing writeback: field updates (scores) with our field names, checked and stored in
 * writeback_queue with their audit entry, all or nothing. send.ts sends them.
 */
import { z } from 'zod'
import type { DbHandle } from '../../../db/client.js'
import { writebackQueue } from '../../../db/schema/index.js'
import { withTenant } from '../../../db/tenant.js'
import { AppError, ConfigError } from '../../../shared/errors.js'
import { entityTypeSchema } from '../../../shared/schemas.js'
import { recordAudit } from '../../audit/audit.js'
import type { AnyConnector, WritebackItem } from '../../connectors/interface.js'
import type { ConnectorRegistry } from '../../connectors/registry.js'
import { findConnection } from '../connection.js'
import { requireWriteback, writebackConnector } from './config.js'

export const writebackItemSchema = z.object({
  entityType: entityTypeSchema,
  externalId: z.string().trim().min(1),
  fields: z
    .record(z.string(), z.unknown())
    .refine((fields) => Object.keys(fields).length > 0, 'must name at least one field'),
})

/** Items a file may hold. Larger score files are split. */
export const MAX_ENQUEUE_ITEMS = 1_000_000

/**
 * Checks updates before they are queued: the shape, and whether the connector can ever write the
 * item. `where(index)` names an item in errors ("line 7"). Every problem is collected, the first
 * ten reported; one bad item rejects them all.
 */
export function parseWritebackItems(
  connector: AnyConnector,
  items: readonly unknown[],
  where: (index: number) => string = (index) => `item ${index}`,
): WritebackItem[] {
  const capability = requireWriteback(connector)
  if (items.length > MAX_ENQUEUE_ITEMS) {
    throw new ConfigError(
      'record_invalid',
      `${items.length} updates are more than ${MAX_ENQUEUE_ITEMS} at once; split the file.`,
    )
  }
  const problems: string[] = []
  const parsed: WritebackItem[] = []
  items.forEach((raw, index) => {
    const result = writebackItemSchema.safeParse(raw)
    if (!result.success) {
      const issue = result.error.issues[0]
      const path = issue?.path.join('.') ?? ''
      problems.push(`${where(index)}: ${path ? `${path} ` : ''}${issue?.message ?? 'invalid'}`)
      return
    }
    const item = result.data
    if (!capability.defaults[item.entityType]) {
      const types = Object.keys(capability.defaults).join(', ')
      problems.push(
        `${where(index)}: ${connector.name} cannot write back ${item.entityType} records (only ${types})`,
      )
      return
    }
    const problem = capability.checkItem?.(item)
    if (problem) {
      problems.push(`${where(index)}: ${problem}`)
      return
    }
    parsed.push(item)
  })
  if (problems.length > 0) {
    const more = problems.length > 10 ? ` (and ${problems.length - 10} more)` : ''
    throw new ConfigError(
      'record_invalid',
      `Nothing was queued: ${problems.slice(0, 10).join('; ')}${more}.`,
    )
  }
  return parsed
}

/**
 * A JSON Lines score file: one `{ entityType, externalId, fields }` a line, blank lines ignored.
 * Errors name the line; nothing is returned unless every line is good.
 */
export function parseWritebackLines(connector: AnyConnector, text: string): WritebackItem[] {
  const lines: number[] = []
  const values: unknown[] = []
  const problems: string[] = []
  text.split('\n').forEach((line, index) => {
    if (line.trim() === '') return
    try {
      values.push(JSON.parse(line) as unknown)
      lines.push(index + 1)
    } catch {
      problems.push(`line ${index + 1}: not valid JSON`)
    }
  })
  if (problems.length > 0) {
    const more = problems.length > 10 ? ` (and ${problems.length - 10} more)` : ''
    throw new ConfigError(
      'record_invalid',
      `Nothing was queued: ${problems.slice(0, 10).join('; ')}${more}.`,
    )
  }
  return parseWritebackItems(connector, values, (index) => `line ${lines[index] ?? index + 1}`)
}

/**
 * Queues updates for a connection's source: the rows and their audit entry commit together, all
 * or nothing. Throws when the connection does not exist or was disconnected.
 */
export async function queueWriteback(
  deps: { handle: DbHandle; registry: ConnectorRegistry; userId: string },
  input: { tenantId: string; connectorType: string; items: readonly unknown[] },
): Promise<{ queued: number; connectorId: string }> {
  const { tenantId, connectorType } = input
  const { connector } = writebackConnector(deps.registry, connectorType)
  const items = parseWritebackItems(connector, input.items)
  return withTenant(deps.handle.db, tenantId, async (tx) => {
    const row = await findConnection(tx, tenantId, connectorType)
    if (!row || row.status === 'disconnected') {
      throw new AppError(
        'connector_not_connected',
        `${connector.name} is not connected for tenant "${tenantId}", so nothing can be written back to it.`,
      )
    }
    // Postgres takes at most 65,535 parameters a statement.
    for (let start = 0; start < items.length; start += 5_000) {
      await tx.insert(writebackQueue).values(
        items.slice(start, start + 5_000).map((item) => ({
          tenantId,
          connectorType,
          entityType: item.entityType,
          externalId: item.externalId,
          fields: item.fields,
        })),
      )
    }
    await recordAudit(tx, {
      tenantId,
      userId: deps.userId,
      action: 'writeback.enqueue',
      resource: 'connector',
      resourceId: row.id,
      metadata: { connectorType, items: items.length },
    })
    return { queued: items.length, connectorId: row.id }
  })
}
