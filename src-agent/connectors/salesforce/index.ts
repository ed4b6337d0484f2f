import type { Connector, Credentials, SourceField } from '../interface.js'
import { connectorRegistry } from '../registry.js'
import { toVendorError } from './errors.js'
import { describeObject, readLimits } from './fetch.js'
import { checkHealth } from './health.js'
import { defaultMappings } from './map.js'
import {
  SALESFORCE_SECRET_KEYS,
  salesforceConfigSchema,
  type SalesforceConfig,
  type SalesforceCredentials,
} from './schemas.js'
import { SalesforceSession, parseStored, type SessionOptions } from './session.js'
import { SALESFORCE_STREAMS, streamObject, upgradeCursor } from './streams.js'
import { salesforceSignIn } from './sign-in.js'
import { syncPage } from './sync.js'
import { salesforceWriteback } from './writeback.js'

export type SalesforceConnector = Connector<SalesforceConfig> & {
  readonly writeback: typeof salesforceWriteback
  readonly signIn: typeof salesforceSignIn
  readonly streams: typeof SALESFORCE_STREAMS
  /** The fields of one stream's object (GET /sobjects/{type}/describe), for the mapping editor. */
  listSourceFields(
    credentials: Credentials,
    stream: string,
    options?: SessionOptions,
  ): Promise<SourceField[]>
}

/**
 * Salesforce over OAuth 2.0 (web-server flow with PKCE, see auth.ts): Contacts and Leads as
 * people, Accounts, and Opportunities, Tasks and Events as activities, read incrementally on
 * SystemModstamp with deletions; scores written back with sObject Collections.
 */
export const salesforceConnector: SalesforceConnector = {
  id: 'salesforce',
  name: 'Salesforce',
  version: '1.0.0',
  authMethod: 'oauth2',
  dataTypes: ['person', 'account', 'activity'],
  configSchema: salesforceConfigSchema,
  secretConfigKeys: SALESFORCE_SECRET_KEYS,
  credentialsHelp:
    'Sign in to Salesforce again (Connect › Sign in): the stored sign-in was revoked or has expired.',

  async authenticate(config, options) {
    // Refreshed tokens are only kept here: connect() stores what we return.
    let latest: SalesforceCredentials = config
    const session = new SalesforceSession(config, {
      signal: options?.signal,
      log: options?.log,
      labels: options?.labels,
      onRetry: options?.onRetry,
      onCredentialsChanged: (next) => {
        latest = parseStored(next)
        return Promise.resolve()
      },
    })
    try {
      await readLimits(session)
    } catch (err) {
      throw toVendorError(err, 'signing in', session)
    }
    return { credentials: { ...latest } }
  },

  sync: syncPage,

  getSchema: defaultMappings,

  healthCheck: checkHealth,

  writeback: salesforceWriteback,

  streams: SALESFORCE_STREAMS,
  // Salesforce ids are unique across an org's objects (each object has its own key prefix).
  idsUniqueAcrossStreams: true,
  upgradeCursor,

  signIn: salesforceSignIn,

  async listSourceFields(credentials, stream, options = {}) {
    const object = streamObject(stream)
    const session = new SalesforceSession(parseStored(credentials), options)
    try {
      const describe = await describeObject(session, object)
      return describe.fields.map((field) => ({
        path: field.name,
        label: field.label ?? field.name,
        type: field.type,
        custom: field.custom ?? false,
      }))
    } catch (err) {
      throw toVendorError(err, `describing ${object}`, session)
    }
  },
}

if (!connectorRegistry.has(salesforceConnector.id)) connectorRegistry.register(salesforceConnector)
