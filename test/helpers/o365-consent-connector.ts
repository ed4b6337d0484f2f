/**
 * A connector for the desktop sign-in tests of Microsoft 365's admin consent: the real sign-in
 * capability and app-only check (src-agent/connectors/o365), with nothing to sync. Loaded into the
 * agent process with GTM_CONNECTOR_MODULES.
 */
import { checkAppOnly } from '../../src-agent/connectors/o365/auth.js'
import { o365ConfigSchema, type O365Config } from '../../src-agent/connectors/o365/config.js'
import { o365SignIn } from '../../src-agent/connectors/o365/sign-in.js'
import { probeHealth } from '../../src-agent/connectors/http.js'
import type { Connector } from '../../src-agent/connectors/interface.js'
import { connectorRegistry } from '../../src-agent/connectors/registry.js'

export const O365_CONSENT_TEST_ID = 'o365-consent-test'

const consentConnector: Connector<O365Config> = {
  id: O365_CONSENT_TEST_ID,
  name: 'Microsoft 365',
  version: '0.0.0',
  authMethod: 'msal',
  dataTypes: ['activity'],
  configSchema: o365ConfigSchema,
  secretConfigKeys: ['clientSecret'],
  async authenticate(config, options) {
    await checkAppOnly(config, options)
    return { credentials: { ...config } }
  },
  async sync() {
    return {
      records: [],
      cursor: null,
      hasMore: false,
      syncedAt: new Date(),
      stats: { created: 0, updated: 0, errors: 0 },
    }
  },
  getSchema: () => [],
  healthCheck(credentials, options) {
    const config = o365ConfigSchema.parse(credentials)
    return probeHealth(() => checkAppOnly(config, options), 'App-only access to Graph works.')
  },
  signIn: o365SignIn,
}

if (!connectorRegistry.has(consentConnector.id)) connectorRegistry.register(consentConnector)
