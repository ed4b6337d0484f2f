import { probeHealth } from '../http.js'
import type { Connector } from '../interface.js'
import { fetchContacts } from './fetch.js'
import { exampleConfigSchema, type ExampleConfig } from './schemas.js'
import { exampleWebhooks } from './webhooks.js'

/**
 * A template connector. Not registered: a real connector ends with
 * `connectorRegistry.register(exampleConnector)`, and its module is imported from
 * src-agent/connectors/index.ts.
 */
export const exampleConnector: Connector<ExampleConfig> = {
  id: 'example',
  name: 'Example',
  version: '0.1.0',
  authMethod: 'api_key',
  dataTypes: ['person'],
  configSchema: exampleConfigSchema,
  secretConfigKeys: ['apiKey', 'webhookSigningKey'],

  async authenticate(config, options) {
    // A cheap authenticated call proves the key before anything is stored.
    await fetchContacts(config, null, options)
    return { credentials: { ...config } }
  },

  async sync(credentials, cursor, options) {
    const config = exampleConfigSchema.parse(credentials)
    const page = await fetchContacts(config, cursor, options)
    return {
      records: page.contacts.map((data) => ({
        entityType: 'person' as const,
        data,
        ...(typeof data.updated_at === 'string' ? { modifiedAt: data.updated_at } : {}),
      })),
      cursor: page.next ?? cursor,
      hasMore: page.next !== null,
      syncedAt: new Date(),
      stats: { created: 0, updated: 0, errors: 0 },
    }
  },

  getSchema(entityType) {
    if (entityType !== 'person') return []
    return [
      { sourceField: 'id', targetField: 'externalId', transform: 'none' },
      { sourceField: 'email', targetField: 'email', transform: 'trim' },
      { sourceField: 'name', targetField: 'firstName', transform: 'trim' },
    ]
  },

  healthCheck(credentials, options) {
    return probeHealth(
      () => fetchContacts(exampleConfigSchema.parse(credentials), null, options),
      'Example answered and accepted the API key.',
    )
  },

  // Optional: only for a source that pushes events (see webhooks.ts).
  webhooks: exampleWebhooks,
}
