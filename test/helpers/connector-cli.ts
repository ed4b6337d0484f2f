import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, expect } from 'vitest'
import { TEST_KEY_HEX } from './agent.js'
import { runCli, type CliResult } from './cli.js'
import { databaseUrl, uniqueTenantId } from './db.js'

/**
 * The CLI as a connector's tests drive it, over this run's database: a new tenant, `connect`
 * with a config file, `sync --json`. Registers the hooks of its temporary folder.
 */
export function connectorCli(type: string) {
  let dir = ''
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), `gtm-${type}-`))
  })
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })
  const env = () => ({ DATABASE_URL: databaseUrl(), CONNECTOR_ENCRYPTION_KEY: TEST_KEY_HEX })
  return {
    env,
    newTenant: async (): Promise<string> => {
      const tenantId = uniqueTenantId(type.slice(0, 6))
      const created = await runCli(['tenants', 'create', tenantId, '--name', type], env())
      expect(created.code, created.stderr).toBe(0)
      return tenantId
    },
    connect: async (tenantId: string, config: Record<string, unknown>): Promise<CliResult> => {
      const file = path.join(dir, `${tenantId}-${Math.random().toString(36).slice(2)}.json`)
      await writeFile(file, JSON.stringify(config))
      return runCli(['connect', type, '--tenant', tenantId, '--config', file], env())
    },
    /** A sync that must succeed as a process; its JSON summary. */
    sync: async (tenantId: string, extra: string[] = []): Promise<Record<string, unknown>> => {
      const result = await runCli(['sync', type, '--tenant', tenantId, '--json', ...extra], env())
      expect(result.code, result.stderr).toBe(0)
      return JSON.parse(result.stdout) as Record<string, unknown>
    },
    /** The same, logging at trace level; the summary and everything it printed. */
    syncTraced: async (
      tenantId: string,
    ): Promise<{ summary: Record<string, unknown>; output: string }> => {
      const result = await runCli(['sync', type, '--tenant', tenantId, '--json'], {
        ...env(),
        LOG_LEVEL: 'trace',
      })
      expect(result.code, result.stderr).toBe(0)
      const summary = JSON.parse(result.stdout) as Record<string, unknown>
      return { summary, output: result.stdout + result.stderr }
    },
  }
}

/** A running `gtm-agent webhooks serve --port 0`: where it listens, and how to stop it. */
export interface WebhookServer {
  /** http://127.0.0.1:<port> */
  origin: string
  /** Stops it with SIGTERM; what it printed. */
  stop(): Promise<CliResult>
}

export async function serveWebhooks(env: Record<string, string>): Promise<WebhookServer> {
  let stdout = ''
  let announced: (url: string) => void = () => undefined
  const listening = new Promise<string>((resolve) => (announced = resolve))
  let kill: () => void = () => undefined
  const done = runCli(['webhooks', 'serve', '--port', '0'], env, {
    onStart: (child) => {
      kill = () => child.kill('SIGTERM')
      child.stdout?.on('data', (chunk: Buffer) => {
        stdout += chunk.toString()
        const match = /Receiving webhooks at (http:\/\/\S+)\/webhooks/.exec(stdout)
        if (match) announced(match[1]!)
      })
    },
  })
  const started = await Promise.race([listening, done])
  if (typeof started !== 'string') throw new Error(`webhooks serve exited: ${started.stderr}`)
  return {
    origin: started,
    stop: () => {
      kill()
      return done
    },
  }
}
