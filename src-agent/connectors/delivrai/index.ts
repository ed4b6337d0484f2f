/**
 * Delivr.ai: intent signals (who read what, for how long) and member engagement (topic surges per
 * person and account), each a stream of activities with a cursor of its own. The first sync reads
 * exactly the last 90 days; later ones read on from the latest row seen.
 */
import { AppError } from '../../../shared/errors.js'
import type { SourceRecord } from '../../../shared/schemas.js'
import { probeHealth } from '../http.js'
import type { Connector, StreamDefinition, SyncOptions } from '../interface.js'
import { jsonCursorPage, readJsonCursor } from '../json-cursor.js'
import { connectorRegistry } from '../registry.js'
import { checkHealth, fetchFeed, PAGE_SIZE } from './fetch.js'
import {
  delivrConfigSchema,
  delivrCursorSchema,
  type DelivrConfig,
  type DelivrCursor,
} from './schemas.js'

/** How far back the first sync of a stream reads. */
export const BACKFILL_DAYS = 90

const STREAMS: readonly StreamDefinition[] = [
  {
    id: 'intent_signals',
    name: 'Intent signals',
    entityType: 'activity',
    defaultMappings: [
      { sourceField: 'id', targetField: 'externalId', transform: 'none' },
      { sourceField: 'kind', targetField: 'type', transform: 'none' },
      { sourceField: 'channel', targetField: 'channel', transform: 'none' },
      { sourceField: 'occurredAt', targetField: 'occurredAt', transform: 'none' },
      { sourceField: 'personId', targetField: 'personExternalId', transform: 'trim' },
      { sourceField: 'accountDomain', targetField: 'accountExternalId', transform: 'lowercase' },
      { sourceField: 'accountDomain', targetField: 'properties.domain', transform: 'lowercase' },
      { sourceField: 'contentTopic', targetField: 'properties.topic', transform: 'trim' },
      { sourceField: 'contentUrl', targetField: 'properties.url', transform: 'trim' },
      {
        sourceField: 'dwellTimeSeconds',
        targetField: 'properties.dwellTimeSeconds',
        transform: 'none',
      },
      { sourceField: 'personEmail', targetField: 'properties.email', transform: 'lowercase' },
      { sourceField: 'sessionId', targetField: 'properties.sessionId', transform: 'none' },
    ],
  },
  {
    id: 'member_engagement',
    name: 'Member engagement',
    entityType: 'activity',
    defaultMappings: [
      { sourceField: 'id', targetField: 'externalId', transform: 'none' },
      { sourceField: 'kind', targetField: 'type', transform: 'none' },
      { sourceField: 'channel', targetField: 'channel', transform: 'none' },
      { sourceField: 'windowEnd', targetField: 'occurredAt', transform: 'none' },
      { sourceField: 'personId', targetField: 'personExternalId', transform: 'trim' },
      { sourceField: 'accountDomain', targetField: 'accountExternalId', transform: 'lowercase' },
      { sourceField: 'accountDomain', targetField: 'properties.domain', transform: 'lowercase' },
      { sourceField: 'topic', targetField: 'properties.topic', transform: 'trim' },
      { sourceField: 'score', targetField: 'properties.score', transform: 'none' },
      { sourceField: 'surge', targetField: 'properties.surge', transform: 'none' },
      { sourceField: 'windowStart', targetField: 'properties.windowStart', transform: 'none' },
      { sourceField: 'windowEnd', targetField: 'properties.windowEnd', transform: 'none' },
    ],
  },
]

const FEEDS = {
  intent_signals: { path: '/v1/intent-signals', kind: 'intent_signal', time: 'occurredAt' },
  member_engagement: {
    path: '/v1/member-engagement',
    kind: 'member_engagement',
    time: 'windowEnd',
  },
} as const

export const delivrConnector: Connector<DelivrConfig> = {
  id: 'delivrai',
  name: 'Delivr.ai',
  version: '1.0.0',
  authMethod: 'api_key',
  dataTypes: ['activity'],
  configSchema: delivrConfigSchema,
  secretConfigKeys: ['apiKey'],
  credentialsHelp:
    'Ask your Delivr.ai account team for an API key issued for GTM Clarity (it starts with dlvr_), and paste it here.',
  streams: STREAMS,
  // Signal ids are Delivr's own; engagement ids are built here as `engagement:<person>:…`.
  idsUniqueAcrossStreams: true,

  async authenticate(config, options) {
    await checkHealth(config, options)
    return { credentials: { ...config } }
  },

  async sync(credentials, cursor, options = {}) {
    const config = delivrConfigSchema.parse(credentials)
    const stream = options.stream as keyof typeof FEEDS | undefined
    const feed = stream ? FEEDS[stream] : undefined
    if (!stream || !feed) {
      throw new AppError('internal', `Delivr.ai has no stream "${options.stream ?? ''}".`)
    }
    const at = startingPoint(cursor, options)
    const page = await fetchFeed(
      config,
      feed.path,
      { since: at.since, cursor: at.next, limit: options.pageSize ?? PAGE_SIZE },
      options,
    )
    let high = at.high
    const records: SourceRecord[] = page.data.map((row) => {
      const time = typeof row[feed.time] === 'string' ? (row[feed.time] as string) : undefined
      if (
        time &&
        !Number.isNaN(Date.parse(time)) &&
        (!high || Date.parse(time) > Date.parse(high))
      ) {
        high = time
      }
      return {
        entityType: 'activity',
        data: {
          ...row,
          ...(stream === 'member_engagement' ? { id: engagementId(row) } : {}),
          kind: feed.kind,
          channel: 'intent',
        },
        ...(time ? { modifiedAt: time } : {}),
      }
    })
    const more = Boolean(page.nextCursor)
    const next: DelivrCursor = more
      ? { v: 1, since: at.since, next: page.nextCursor ?? null, high }
      : // The walk is over: the next one starts at the latest row seen (read again, unchanged).
        { v: 1, since: high ?? at.since, next: null, high }
    return jsonCursorPage(records, next, more)
  },

  getSchema(entityType) {
    return entityType === 'activity'
      ? (STREAMS[0]?.defaultMappings ?? []).map((m) => ({ ...m }))
      : []
  },

  listSourceFields(_credentials, stream) {
    const found = STREAMS.find((s) => s.id === stream)
    // The feeds have a fixed shape (no custom fields): the fields the default mappings read.
    const fields = (found?.defaultMappings ?? [])
      .filter((m, i, all) => all.findIndex((o) => o.sourceField === m.sourceField) === i)
      .filter((m) => m.sourceField !== 'kind' && m.sourceField !== 'channel')
      .map((m) => ({
        path: m.sourceField,
        label: m.sourceField,
        type: FIELD_TYPES[m.sourceField] ?? 'string',
      }))
    return Promise.resolve(fields)
  },

  healthCheck(credentials, options) {
    return probeHealth(
      () => checkHealth(delivrConfigSchema.parse(credentials), options),
      'Delivr.ai answered and accepted the API key.',
    )
  },
}

const FIELD_TYPES: Record<string, string> = {
  occurredAt: 'datetime',
  windowStart: 'datetime',
  windowEnd: 'datetime',
  dwellTimeSeconds: 'number',
  score: 'number',
  surge: 'boolean',
}

/** Where a page starts: the stored cursor, or exactly BACKFILL_DAYS ago on a first (or full) sync. */
function startingPoint(cursor: string | null, options: SyncOptions): DelivrCursor {
  const stored = readJsonCursor(delivrCursorSchema, cursor, () =>
    options.log?.warn(
      'the stored Delivr.ai cursor is not one this connector wrote; reading the last 90 days',
    ),
  )
  if (stored) return stored
  const since = new Date(Date.now() - BACKFILL_DAYS * 24 * 60 * 60 * 1000).toISOString()
  return { v: 1, since, next: null, high: null }
}

/** Engagement rows have no id: one per person, account, topic and window. */
function engagementId(row: Record<string, unknown>): string {
  const part = (key: string) =>
    typeof row[key] === 'string' || typeof row[key] === 'number' ? String(row[key]) : ''
  return `engagement:${part('personId')}:${part('accountDomain').toLowerCase()}:${part('topic')}:${part('windowStart')}`
}

if (!connectorRegistry.has(delivrConnector.id)) connectorRegistry.register(delivrConnector)
