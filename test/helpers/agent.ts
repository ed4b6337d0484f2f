import { randomUUID } from 'node:crypto'
import { Writable } from 'node:stream'
import type { DbHandle } from '../../db/client.js'
import { createDb } from '../../db/client.js'
import { connectorRegistry } from '../../src-agent/connectors/registry.js'
import { createLogger, type Logger } from '../../src-agent/logging/logger.js'
import type { SyncDeps } from '../../src-agent/pipeline/run-sync.js'
import { keyringFromHex, type Keyring } from '../../src-agent/secrets/crypto.js'
import { connect } from '../../src-agent/services/connections.js'
import type { PagerFake } from '../fakes/pager.js'
import { databaseUrl, seedTenant } from './db.js'
import './test-connector.js'

export const TEST_KEY_HEX = 'a'.repeat(64)

/** A logger writing into memory, so tests can read every line it produced. */
export function memoryLogger(level = 'trace'): { log: Logger; lines: () => string } {
  const chunks: string[] = []
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      chunks.push(chunk.toString())
      done()
    },
  })
  return { log: createLogger({ level, destination }), lines: () => chunks.join('') }
}

export interface AgentFixture extends SyncDeps {
  keyring: Keyring
  /** What its sessions are named in pg_stat_activity: no other fixture's are. */
  applicationName: string
  logLines: () => string
  close(): Promise<void>
}

/** Real agent dependencies over this run's database; statements can be observed via `onQuery`. */
export function agentFixture(options: { onQuery?: (sql: string) => void } = {}): AgentFixture {
  const applicationName = `gtm-test-${randomUUID().slice(0, 8)}`
  const handle: DbHandle = createDb(databaseUrl(), {
    applicationName,
    ...(options.onQuery ? { onQuery: options.onQuery } : {}),
  })
  const { log, lines } = memoryLogger()
  return {
    handle,
    keyring: keyringFromHex(TEST_KEY_HEX),
    applicationName,
    registry: connectorRegistry,
    log,
    userId: 'test:runner',
    logLines: lines,
    close: () => handle.close(),
  }
}

/** A fresh tenant connected to the pager fake through the real connect service. */
export async function connectedTenant(
  agent: AgentFixture,
  fake: PagerFake,
  config: { pageSize?: number; apiKey?: string } = {},
): Promise<string> {
  const tenantId = await seedTenant(agent.handle)
  await connect(
    { db: agent.handle.db, registry: agent.registry, keyring: agent.keyring, log: agent.log },
    {
      tenantId,
      connectorType: 'test-pages',
      configJson: {
        baseUrl: fake.url,
        apiKey: config.apiKey ?? fake.apiKey,
        pageSize: config.pageSize ?? 25,
      },
      userId: agent.userId,
    },
  )
  return tenantId
}
