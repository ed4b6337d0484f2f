import { randomBytes } from 'node:crypto'
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { deliverPagerWebhook, pagerEvent } from '../../fakes/pager-webhooks.js'
import { startPagerFake, type PagerFake } from '../../fakes/pager.js'
import { agentFixture, TEST_KEY_HEX, type AgentFixture } from '../../helpers/agent.js'
import { repoRoot, runCli } from '../../helpers/cli.js'
import type { DbHandle } from '../../../db/client.js'
import { databaseUrl, ownerDb } from '../../helpers/db.js'
import {
  connectTenant,
  startTemporalTestEnv,
  waitFor,
  type TemporalTestEnv,
} from '../../helpers/temporal.js'

describe('worker --webhooks-port', () => {
  let env: TemporalTestEnv
  let agent: AgentFixture
  let fake: PagerFake
  let dataDir: string
  let owner: DbHandle

  beforeAll(async () => {
    env = await startTemporalTestEnv('worker-webhooks')
    agent = agentFixture()
    owner = ownerDb()
    fake = await startPagerFake()
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'gtm-worker-webhooks-'))
  })
  afterAll(async () => {
    await fake?.close()
    await agent?.close()
    await owner?.close()
    await env?.close()
    if (dataDir) await rm(dataDir, { recursive: true, force: true })
  })

  it('receives and processes webhooks beside the worker, counts them in its metrics, and stops with it', async () => {
    const key = `whsec-${randomBytes(16).toString('hex')}`
    const tenantId = await connectTenant(agent.handle, 'test-pages', {
      baseUrl: fake.url,
      apiKey: fake.apiKey,
      webhookSigningKey: key,
    })
    let child: ChildProcess | undefined
    let stdout = ''
    let stderr = ''
    const done = runCli(
      ['worker', '--webhooks-port', '0', '--metrics-port', '0'],
      {
        DATABASE_URL: databaseUrl(),
        GTM_CONNECTOR_MODULES: path.join(repoRoot, 'test/helpers/test-connector.ts'),
        CONNECTOR_ENCRYPTION_KEY: TEST_KEY_HEX,
        TEMPORAL_ADDRESS: env.address,
        TEMPORAL_TASK_QUEUE: env.taskQueue,
        GTM_WORKFLOW_BUNDLE: env.bundlePath,
        GTM_DATA_DIR: dataDir,
      },
      {
        onStart: (c) => {
          child = c
          c.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
          c.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
        },
      },
    )
    try {
      const base = await waitFor(
        () => /Receiving webhooks at (http:\/\/\S+)\/webhooks/.exec(stdout)?.[1],
        { what: 'the webhook address on stdout' },
      )
      const answer = await deliverPagerWebhook(
        `${base}/webhooks/test-pages/${tenantId}`,
        pagerEvent('evt-w1', [{ kind: 'person', id: 'p-w1', email: 'w1@example.com' }]),
        { key },
      )
      expect(answer.status).toBe(202)
      await waitFor(
        async () => {
          const rows = await owner.pool.query<{ status: string }>(
            'select status from webhook_inbox where tenant_id = $1',
            [tenantId],
          )
          return rows.rows[0]?.status === 'processed'
        },
        { what: 'the event processed' },
      )
      const people = await owner.pool.query<{ external_id: string }>(
        'select external_id from people where tenant_id = $1',
        [tenantId],
      )
      expect(people.rows).toEqual([{ external_id: 'p-w1' }])

      // A redelivery of the same event, and one signed with another key.
      const event = pagerEvent('evt-w1', [{ kind: 'person', id: 'p-w1', email: 'w1@example.com' }])
      const again = await deliverPagerWebhook(`${base}/webhooks/test-pages/${tenantId}`, event, {
        key,
      })
      expect(again.status).toBeLessThan(300)
      const forged = await deliverPagerWebhook(
        `${base}/webhooks/test-pages/${tenantId}`,
        pagerEvent('evt-w2', [{ kind: 'person', id: 'p-w2', email: 'w2@example.com' }]),
        { key: `whsec-${randomBytes(16).toString('hex')}` },
      )
      expect(forged.status).toBe(401)
      const metricsBase = await waitFor(
        () => /Serving metrics at (http:\/\/\S+)\/metrics/.exec(stdout)?.[1],
        { what: 'the metrics address on stdout' },
      )
      const body = await (await fetch(`${metricsBase}/metrics`)).text()
      const count = (outcome: string): number => {
        const line = body
          .split('\n')
          .find(
            (l) =>
              l.startsWith('gtm_webhook_events_total{') &&
              l.includes(`tenant="${tenantId}"`) &&
              l.includes('connector="test-pages"') &&
              l.includes(`outcome="${outcome}"`),
          )
        return line ? Number(line.split(' ').at(-1)) : 0
      }
      expect({
        received: count('received'),
        duplicate: count('duplicate'),
        refused: count('refused'),
        processed: count('processed'),
      }).toEqual({ received: 1, duplicate: 1, refused: 1, processed: 1 })
      expect(body).not.toContain(key)
      expect(body).not.toContain('w1@example.com')
      // Stopped once the worker is up too: both end with the one signal.
      await waitFor(() => stderr.includes('"msg":"worker started"'), { what: 'the worker' })
    } finally {
      child?.kill('SIGTERM')
    }
    const result = await done
    expect(result.code, result.stderr.slice(-3000)).toBe(0)
    expect(result.stderr).toContain('"msg":"worker stopped"')
    expect(result.stderr + result.stdout).not.toContain(key)
  }, 90_000)
})
