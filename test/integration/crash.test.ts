import { spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { sql } from 'drizzle-orm'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { accounts, activities, people, syncRuns } from '../../db/schema/index.js'
import { withTenant } from '../../db/tenant.js'
import { startPagerFake, type PagerFake } from '../fakes/pager.js'
import { agentFixture, connectedTenant, TEST_KEY_HEX, type AgentFixture } from '../helpers/agent.js'
import { connectionRows } from '../helpers/connections.js'
import { databaseUrl } from '../helpers/db.js'

const CLI = path.resolve('src-agent/bin/gtm-agent.mjs')
const TEST_CONNECTOR = path.resolve('test/helpers/test-connector.ts')
const TOTAL = 40 + 200 + 100

describe('crash safety of a sync killed mid-way', () => {
  let agent: AgentFixture
  let fake: PagerFake
  let child: ChildProcess | undefined

  beforeEach(async () => {
    agent = agentFixture()
    fake = await startPagerFake({ accounts: 40, people: 200, activities: 100, delayMs: 40 })
  })
  afterEach(async () => {
    child?.kill('SIGKILL')
    await fake.close()
    await agent.close()
  })

  const startSync = (tenantId: string): ChildProcess =>
    spawn(process.execPath, [CLI, 'sync', 'test-pages', '--tenant', tenantId, '--json'], {
      env: {
        ...process.env,
        DATABASE_URL: databaseUrl(),
        CONNECTOR_ENCRYPTION_KEY: TEST_KEY_HEX,
        GTM_CONNECTOR_MODULES: TEST_CONNECTOR,
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })

  const committed = (tenantId: string) =>
    withTenant(agent.handle.db, tenantId, async (tx) => {
      const [conn] = await connectionRows(tx)
      const count = async (table: typeof people | typeof accounts | typeof activities) =>
        (await tx.select({ n: sql<number>`count(*)::int` }).from(table))[0]!.n
      return {
        cursor: conn?.cursor ? Number(conn.cursor) : 0,
        rows: (await count(people)) + (await count(accounts)) + (await count(activities)),
      }
    })

  async function killAfterCursor(tenantId: string, atLeast: number): Promise<number> {
    child = startSync(tenantId)
    const deadline = Date.now() + 60_000
    for (;;) {
      const { cursor } = await committed(tenantId)
      if (cursor >= atLeast) break
      if (child.exitCode !== null) throw new Error(`sync exited early with ${child.exitCode}`)
      if (Date.now() > deadline) throw new Error('sync made no progress')
      await new Promise((r) => setTimeout(r, 10))
    }
    const exited = new Promise((resolve) => child!.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
    const after = await committed(tenantId)
    // Whatever instant the kill hit, what is committed is exactly the pages before the cursor.
    expect(after.rows).toBe(after.cursor)
    return after.cursor
  }

  it('resumes from the last committed cursor with no lost and no duplicate rows', async () => {
    const tenantId = await connectedTenant(agent, fake, { pageSize: 20 })

    const firstKill = await killAfterCursor(tenantId, 60)
    expect(firstKill).toBeGreaterThanOrEqual(60)
    expect(firstKill).toBeLessThan(TOTAL)

    fake.requests.length = 0
    const secondKill = await killAfterCursor(tenantId, firstKill + 60)
    // The second process started where the first one's last commit left off.
    expect(fake.requests[0]).toBe(firstKill)
    expect(secondKill).toBeLessThan(TOTAL)

    fake.requests.length = 0
    child = startSync(tenantId)
    let stdout = ''
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()))
    const code = await new Promise((resolve) => child!.once('exit', resolve))
    expect(code).toBe(0)
    expect(fake.requests[0]).toBe(secondKill)
    const summary = JSON.parse(stdout) as { status: string; created: number; updated: number }
    expect(summary).toMatchObject({ status: 'succeeded', created: TOTAL - secondKill, updated: 0 })

    const final = await committed(tenantId)
    expect(final).toEqual({ cursor: TOTAL, rows: TOTAL })
    const duplicates = await withTenant(agent.handle.db, tenantId, (tx) =>
      tx.execute(
        sql`select external_id from people group by external_id having count(*) > 1
            union all select external_id from accounts group by external_id having count(*) > 1
            union all select external_id from activities group by external_id having count(*) > 1`,
      ),
    )
    expect(duplicates.rows).toHaveLength(0)
    const runs = await withTenant(agent.handle.db, tenantId, (tx) =>
      tx.select().from(syncRuns).orderBy(syncRuns.startedAt),
    )
    expect(runs.map((r) => r.status)).toEqual(['failed', 'failed', 'succeeded'])
    expect(runs[0]!.error).toMatch(/Interrupted/)
  })
})
