/**
 * Fathom (AI note taker): each recorded meeting becomes a `meeting_recorded` activity, and its
 * content (invitees, transcript, summary, action items) a fathom_meetings row. Ingest only.
 * Meetings arrive by sync (created_after, with an overlap for meetings that appear late) and by
 * Fathom's "new meeting content ready" webhook, through the same inbox and path.
 */
import { AppError } from '../../../shared/errors.js'
import { probeHealth } from '../http.js'
import type { Connector, StreamDefinition, SyncOptions } from '../interface.js'
import { jsonCursorPage, readJsonCursor } from '../json-cursor.js'
import { connectorRegistry } from '../registry.js'
import { fetchMeetings, probeMeetings } from './fetch.js'
import { fathomSideTables, meetingRecord } from './meetings.js'
import {
  fathomConfigSchema,
  fathomCursorSchema,
  type FathomConfig,
  type FathomCursor,
} from './schemas.js'
import { fathomWebhooks } from './webhooks.js'

/** Meetings can become visible a little after their created_at: each sync looks back this far. */
export const OVERLAP_MS = 10 * 60_000

const STREAMS: readonly StreamDefinition[] = [
  {
    id: 'meetings',
    name: 'Meetings',
    entityType: 'activity',
    defaultMappings: [
      { sourceField: 'activityId', targetField: 'externalId', transform: 'none' },
      { sourceField: 'kind', targetField: 'type', transform: 'none' },
      { sourceField: 'channel', targetField: 'channel', transform: 'none' },
      { sourceField: 'startedAt', targetField: 'occurredAt', transform: 'none' },
      {
        sourceField: 'externalInviteeEmail',
        targetField: 'personExternalId',
        transform: 'lowercase',
      },
      { sourceField: 'recording_id', targetField: 'properties.fathomMeetingId', transform: 'none' },
      {
        sourceField: 'participantCount',
        targetField: 'properties.participantCount',
        transform: 'none',
      },
      {
        sourceField: 'durationSeconds',
        targetField: 'properties.durationSeconds',
        transform: 'none',
      },
      { sourceField: 'displayTitle', targetField: 'properties.title', transform: 'trim' },
    ],
  },
]

export const fathomConnector: Connector<FathomConfig> = {
  id: 'fathom',
  name: 'Fathom',
  version: '1.0.0',
  authMethod: 'api_key',
  dataTypes: ['activity'],
  configSchema: fathomConfigSchema,
  secretConfigKeys: ['apiKey', 'webhookSecret'],
  credentialsHelp:
    'Create an API key in Fathom under User Settings › API Access (it sees the meetings of the user who made it), and paste it here.',
  streams: STREAMS,

  async authenticate(config, options) {
    await probeMeetings(config, options)
    return { credentials: { ...config } }
  },

  async sync(credentials, cursor, options = {}) {
    const config = fathomConfigSchema.parse(credentials)
    if (options.stream && options.stream !== 'meetings') {
      throw new AppError('internal', `Fathom has no stream "${options.stream}".`)
    }
    const at = startingPoint(cursor, options)
    const page = await fetchMeetings(
      config,
      { createdAfter: at.createdAfter, cursor: at.next },
      options,
    )
    let high = at.high
    for (const item of page.items) {
      const created = typeof item['created_at'] === 'string' ? item['created_at'] : undefined
      if (
        created &&
        !Number.isNaN(Date.parse(created)) &&
        (!high || Date.parse(created) > Date.parse(high))
      ) {
        high = created
      }
    }
    const more = Boolean(page.next_cursor)
    const next: FathomCursor = more
      ? { v: 1, createdAfter: at.createdAfter, next: page.next_cursor ?? null, high }
      : {
          v: 1,
          // The next walk looks back OVERLAP_MS from the newest meeting seen.
          createdAfter: high
            ? new Date(Date.parse(high) - OVERLAP_MS).toISOString()
            : at.createdAfter,
          next: null,
          high,
        }
    return jsonCursorPage(
      page.items.map((item) => meetingRecord(item)),
      next,
      more,
    )
  },

  getSchema(entityType) {
    return entityType === 'activity'
      ? (STREAMS[0]?.defaultMappings ?? []).map((m) => ({ ...m }))
      : []
  },

  listSourceFields() {
    return Promise.resolve(
      [
        ['recording_id', 'number'],
        ['title', 'string'],
        ['meeting_title', 'string'],
        ['url', 'string'],
        ['share_url', 'string'],
        ['created_at', 'datetime'],
        ['scheduled_start_time', 'datetime'],
        ['scheduled_end_time', 'datetime'],
        ['recording_start_time', 'datetime'],
        ['recording_end_time', 'datetime'],
        ['transcript_language', 'string'],
        ['calendar_invitees_domains_type', 'string'],
        ['recorded_by.email', 'string'],
        ['recorded_by.team', 'string'],
        ['externalInviteeEmail', 'string'],
        ['participantCount', 'number'],
        ['durationSeconds', 'number'],
      ].map(([path, type]) => ({ path: path!, label: path!, type: type! })),
    )
  },

  healthCheck(credentials, options) {
    return probeHealth(
      () => probeMeetings(fathomConfigSchema.parse(credentials), options),
      'Fathom answered and accepted the API key.',
    )
  },

  webhooks: fathomWebhooks,
  sideTables: fathomSideTables,
}

function startingPoint(cursor: string | null, options: SyncOptions): FathomCursor {
  const stored = readJsonCursor(fathomCursorSchema, cursor, () =>
    options.log?.warn(
      'the stored Fathom cursor is not one this connector wrote; reading every meeting',
    ),
  )
  return stored ?? { v: 1, createdAfter: null, next: null, high: null }
}

if (!connectorRegistry.has(fathomConnector.id)) connectorRegistry.register(fathomConnector)
