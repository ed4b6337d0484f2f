import type { Transport } from './agent-run.js'
import type { FakeReady } from './fake-server.js'

/**
 * The Salesforce connection config of a benchmark run: REST keyset pages throughout, or Bulk 2.0
 * CSV for every object read from scratch, with the connector's default Bulk job polling. The
 * pipeline run and the source ceiling share it (the source ceiling polls every millisecond, so
 * that it measures the source alone).
 */
export function benchConnectConfig(
  fake: FakeReady,
  transport: Transport,
  extra: { idleTimeoutMs?: number; bulkPollIntervalMs?: number } = {},
) {
  return {
    ...extra,
    instanceUrl: fake.url,
    loginUrl: fake.url,
    clientId: fake.clientId,
    refreshToken: fake.refreshToken,
    bulkMinRecords: transport === 'rest' ? Number.MAX_SAFE_INTEGER : 1,
  }
}
