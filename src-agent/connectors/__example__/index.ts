import { AppError } from '../../../shared/errors.js'
import type { SourceRecord } from '../../../shared/schemas.js'
import { probeHealth } from '../http.js'
import type { Connector, StreamDefinition } from '../interface.js'
import { fetchContacts, fetchFields, fetchMeetings, fetchTeams } from './fetch.js'
import { exampleConfigSchema, type ExampleConfig } from './schemas.js'
import { exampleSignIn } from './sign-in.js'
import { exampleWebhooks } from './webhooks.js'

/**
 * Its streams: contacts, and meetings read per team (a partitioned stream: each team has its
 * own cursor and can be read again alone). Each stream brings its default mappings.
 */
const STREAMS: readonly StreamDefinition[] = [
  {
    id: 'contacts',
    name: 'Contacts',
    entityType: 'person',
    defaultMappings: [
      { sourceField: 'id', targetField: 'externalId', transform: 'none' },
      { sourceField: 'email', targetField: 'email', transform: 'trim' },
      { sourceField: 'name', targetField: 'firstName', transform: 'trim' },
    ],
  },
  {
    id: 'meetings',
    name: 'Meetings',
    entityType: 'activity',
    partitioned: true,
    defaultMappings: [
      { sourceField: 'id', targetField: 'externalId', transform: 'none' },
      { sourceField: 'kind', targetField: 'type', transform: 'none' },
      { sourceField: 'started_at', targetField: 'occurredAt', transform: 'none' },
      { sourceField: 'contact_id', targetField: 'personExternalId', transform: 'none' },
      { sourceField: 'title', targetField: 'properties.title', transform: 'none' },
    ],
  },
]

/**
 * A template connector, the one new connectors are copied from. Not registered: a real
 * connector ends with `connectorRegistry.register(exampleConnector)`, and its module is imported
 * from src-agent/connectors/index.ts. test/integration/connectors/example.test.ts runs it against
 * test/fakes/example.ts.
 */
export const exampleConnector: Connector<ExampleConfig> = {
  id: 'example',
  name: 'Example',
  version: '0.1.0',
  authMethod: 'api_key',
  dataTypes: ['person', 'activity'],
  configSchema: exampleConfigSchema,
  secretConfigKeys: ['apiKey', 'webhookSigningKey'],
  streams: STREAMS,
  // Optional: only for a vendor an admin connects by signing in (see sign-in.ts).
  signIn: exampleSignIn,

  async authenticate(config, options) {
    // A cheap authenticated call proves the key before anything is stored.
    await fetchTeams(config, options)
    return { credentials: { ...config } }
  },

  /** One page of one stream (and partition), from that stream's own cursor. */
  async sync(credentials, cursor, options = {}) {
    const config = exampleConfigSchema.parse(credentials)
    let records: SourceRecord[]
    let page: { next_cursor: string | null; has_more: boolean }
    if (options.stream === 'contacts') {
      const contacts = await fetchContacts(config, cursor, options)
      records = contacts.contacts.map((data) => ({
        entityType: 'person',
        data,
        modifiedAt: data.updated_at,
      }))
      page = contacts
    } else if (options.stream === 'meetings' && options.partition) {
      const meetings = await fetchMeetings(config, options.partition, cursor, options)
      records = meetings.meetings.map((meeting) => ({
        entityType: 'activity',
        data: { ...meeting, kind: 'meeting', team: options.partition },
      }))
      page = meetings
    } else {
      throw new AppError('internal', `Example has no stream "${options.stream ?? ''}".`)
    }
    return {
      records,
      // After the last page the vendor's cursor is where the next sync resumes.
      cursor: page.next_cursor ?? cursor,
      hasMore: page.has_more,
      syncedAt: new Date(),
      stats: { created: 0, updated: 0, errors: 0 },
    }
  },

  listPartitions(credentials, _stream, options) {
    return fetchTeams(exampleConfigSchema.parse(credentials), options)
  },

  async listSourceFields(credentials, stream, options) {
    const kind = stream === 'contacts' ? 'contact' : 'meeting'
    const fields = await fetchFields(exampleConfigSchema.parse(credentials), kind, options)
    return fields.map((f) => ({ path: f.key, label: f.label, type: f.type, custom: f.custom }))
  },

  getSchema(entityType) {
    const stream = STREAMS.find((s) => s.entityType === entityType)
    return stream?.defaultMappings?.map((m) => ({ ...m })) ?? []
  },

  healthCheck(credentials, options) {
    return probeHealth(
      () => fetchTeams(exampleConfigSchema.parse(credentials), options),
      'Example answered and accepted the API key.',
    )
  },

  // Optional: only for a source that pushes events (see webhooks.ts).
  webhooks: exampleWebhooks,
}
