/**
 * Customer.io: email engagement (one activity per delivery per state it reached) and people.
 * Backfill and repair read the App API; Reporting Webhooks bring the same events as they happen,
 * through the inbox, and make the same activities.
 */
import { AppError } from '../../../shared/errors.js'
import type { SourceRecord } from '../../../shared/schemas.js'
import { probeHealth } from '../http.js'
import type { Connector, StreamDefinition, SyncOptions } from '../interface.js'
import { jsonCursorPage, readJsonCursor } from '../json-cursor.js'
import { connectorRegistry } from '../registry.js'
import { deliveryActivities } from './events.js'
import { checkKey, fetchCustomers, fetchMessages } from './fetch.js'
import {
  customerioConfigSchema,
  customerioCursorSchema,
  type CustomerioConfig,
  type CustomerioCursor,
} from './schemas.js'
import { customerioWebhooks } from './webhooks.js'

/** The first sync reads deliveries made this long ago and since. */
export const BACKFILL_DAYS = 30
/**
 * Each later sync reads deliveries made this long before the last one ended again: opens and
 * clicks keep arriving on deliveries made days before (webhooks bring them sooner).
 */
export const LOOKBACK_SECONDS = 3 * 24 * 60 * 60

const STREAMS: readonly StreamDefinition[] = [
  {
    id: 'email_activity',
    name: 'Email engagement',
    entityType: 'activity',
    defaultMappings: [
      { sourceField: 'activityId', targetField: 'externalId', transform: 'none' },
      { sourceField: 'kind', targetField: 'type', transform: 'none' },
      { sourceField: 'channel', targetField: 'channel', transform: 'none' },
      { sourceField: 'occurredAt', targetField: 'occurredAt', transform: 'none' },
      { sourceField: 'personId', targetField: 'personExternalId', transform: 'trim' },
      { sourceField: 'campaignId', targetField: 'properties.campaignId', transform: 'none' },
      { sourceField: 'actionId', targetField: 'properties.actionId', transform: 'none' },
      { sourceField: 'broadcastId', targetField: 'properties.broadcastId', transform: 'none' },
      { sourceField: 'deliveryId', targetField: 'properties.deliveryId', transform: 'none' },
      { sourceField: 'subject', targetField: 'properties.subject', transform: 'trim' },
      { sourceField: 'link', targetField: 'properties.link', transform: 'trim' },
    ],
  },
  {
    id: 'customers',
    name: 'People',
    entityType: 'person',
    defaultMappings: [
      { sourceField: 'personId', targetField: 'externalId', transform: 'trim' },
      { sourceField: 'email', targetField: 'email', transform: 'lowercase' },
    ],
  },
]

const PAGE_SIZE = 100

export const customerioConnector: Connector<CustomerioConfig> = {
  id: 'customerio',
  name: 'Customer.io',
  version: '1.0.0',
  authMethod: 'api_key',
  dataTypes: ['person', 'activity'],
  configSchema: customerioConfigSchema,
  secretConfigKeys: ['appApiKey', 'webhookSigningKey'],
  credentialsHelp:
    'Create an App API key in Customer.io under Settings › API Credentials › App API Keys, and paste it here.',
  streams: STREAMS,

  async authenticate(config, options) {
    await checkKey(config, options)
    return { credentials: { ...config } }
  },

  async sync(credentials, cursor, options = {}) {
    const config = customerioConfigSchema.parse(credentials)
    const at = readCursor(cursor, options)
    const limit = options.pageSize ?? PAGE_SIZE
    let records: SourceRecord[]
    let next: CustomerioCursor
    let more: boolean
    if (options.stream === 'email_activity') {
      const now = Math.floor(Date.now() / 1000)
      // A walk in progress keeps its window; a new one starts a lookback before the last ended.
      const window =
        at.start !== null && at.startTs !== undefined && at.endTs !== undefined
          ? { startTs: at.startTs, endTs: at.endTs }
          : {
              startTs:
                at.endTs !== undefined ? at.endTs - LOOKBACK_SECONDS : now - BACKFILL_DAYS * 86_400,
              endTs: now,
            }
      const page = await fetchMessages(config, { ...window, start: at.start, limit }, options)
      records = page.messages.flatMap((m) => deliveryActivities(m))
      more = Boolean(page.next)
      next = { v: 1, start: more ? (page.next ?? null) : null, ...window }
    } else if (options.stream === 'customers') {
      const page = await fetchCustomers(config, { start: at.start, limit }, options)
      records = page.identifiers.map((identifiers) => ({
        entityType: 'person',
        data: {
          ...identifiers,
          personId: [identifiers['id'], identifiers['email'], identifiers['cio_id']].find(
            (v) => (typeof v === 'string' && v !== '') || typeof v === 'number',
          ),
        },
      }))
      more = Boolean(page.next)
      next = { v: 1, start: more ? (page.next ?? null) : null }
    } else {
      throw new AppError('internal', `Customer.io has no stream "${options.stream ?? ''}".`)
    }
    return jsonCursorPage(records, next, more)
  },

  getSchema(entityType) {
    const stream = STREAMS.find((s) => s.entityType === entityType)
    return (stream?.defaultMappings ?? []).map((m) => ({ ...m }))
  },

  listSourceFields(_credentials, stream) {
    const found = STREAMS.find((s) => s.id === stream)
    return Promise.resolve(
      (found?.defaultMappings ?? [])
        .filter((m) => !['kind', 'channel'].includes(m.sourceField))
        .map((m) => ({
          path: m.sourceField,
          label: m.sourceField,
          type: m.sourceField === 'occurredAt' ? 'datetime' : 'string',
        })),
    )
  },

  healthCheck(credentials, options) {
    return probeHealth(
      () => checkKey(customerioConfigSchema.parse(credentials), options),
      'Customer.io answered and accepted the App API key.',
    )
  },

  webhooks: customerioWebhooks,
}

function readCursor(cursor: string | null, options: SyncOptions): CustomerioCursor {
  const stored = readJsonCursor(customerioCursorSchema, cursor, () =>
    options.log?.warn(
      'the stored Customer.io cursor is not one this connector wrote; starting over',
    ),
  )
  return stored ?? { v: 1, start: null }
}

if (!connectorRegistry.has(customerioConnector.id)) connectorRegistry.register(customerioConnector)
