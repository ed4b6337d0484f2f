import { sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { DbHandle } from '../../db/client.js'
import { connectors, syncRuns } from '../../db/schema/index.js'
import { withTenant } from '../../db/tenant.js'
import type { SyncRunStatus } from '../../shared/schemas.js'
import { connectedUnlessSyncing, failingStreams } from '../../src-agent/pipeline/run-sync.js'
import { agentDb, ownerDb, seedTenant } from '../helpers/db.js'

/** Rows a plan read from sync_runs: returned and filtered out, over every loop of every scan. */
function rowsRead(plan: PlanNode): number {
  const own =
    plan['Relation Name'] === 'sync_runs'
      ? (plan['Actual Rows'] + (plan['Rows Removed by Filter'] ?? 0)) * plan['Actual Loops']
      : 0
  return own + (plan.Plans ?? []).reduce((sum, child) => sum + rowsRead(child), 0)
}

interface PlanNode {
  'Relation Name'?: string
  'Actual Rows': number
  'Actual Loops': number
  'Rows Removed by Filter'?: number
  Plans?: PlanNode[]
}

describe("a connection's run history", () => {
  let handle: DbHandle
  let tenantId: string
  let connectorId: string
  let runningId: string
  const HISTORY = 30_000

  beforeAll(async () => {
    handle = agentDb()
    tenantId = await seedTenant(handle)
    await withTenant(handle.db, tenantId, async (tx) => {
      const [row] = await tx
        .insert(connectors)
        .values({ tenantId, type: 'salesforce', status: 'connected' })
        .returning({ id: connectors.id })
      connectorId = row!.id
      // A year and more of runs, every 15 minutes, of six streams and the legacy stream-less one.
      await tx.execute(sql`
        insert into sync_runs (tenant_id, connector_id, mode, status, stream, started_at, finished_at)
        select ${tenantId}, ${connectorId}, 'incremental',
          case when g % 7 = 0 then 'failed' else 'succeeded' end,
          (array[null, 'accounts', 'contacts', 'events', 'leads', 'opportunities', 'tasks'])[1 + g % 7],
          now() - make_interval(mins => 15 * g) - interval '1 hour',
          now() - make_interval(mins => 15 * g) - interval '1 hour'
        from generate_series(1, ${HISTORY}) g`)
      // The latest of each stream: tasks failed; events is running after a failure; leads is
      // running after a success; the stream-less runs' failure is of no stream.
      const latest = async (stream: string | null, status: SyncRunStatus, minutesAgo: number) => {
        const [run] = await tx
          .insert(syncRuns)
          .values({
            tenantId,
            connectorId,
            mode: 'incremental',
            stream,
            status,
            startedAt: sql`now() - make_interval(mins => ${minutesAgo})`,
          })
          .returning({ id: syncRuns.id })
        return run!.id
      }
      for (const stream of ['accounts', 'contacts', 'opportunities'])
        await latest(stream, 'succeeded', 5)
      await latest('tasks', 'succeeded', 30)
      await latest('tasks', 'failed', 5)
      await latest('events', 'failed', 20)
      runningId = await latest('events', 'running', 1)
      await latest('leads', 'succeeded', 20)
      await latest('leads', 'running', 1)
      await latest(null, 'failed', 1)
    })
    // Statistics as autovacuum would have them for a table this size (ANALYZE is the owner's).
    const owner = ownerDb()
    await owner.db.execute(sql`analyze sync_runs`)
    await owner.close()
  })

  afterAll(async () => {
    await handle?.close()
  })

  it("names the streams whose latest ended run failed, reading a few rows of a year's history", async () => {
    await withTenant(handle.db, tenantId, async (tx) => {
      const failing = await tx.execute<{ stream: string }>(failingStreams(connectorId))
      expect(failing.rows.map((row) => row.stream).sort()).toEqual(['events', 'tasks'])

      const explained = await tx.execute<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(
        sql`explain (analyze, format json) ${failingStreams(connectorId)}`,
      )
      const read = rowsRead(explained.rows[0]!['QUERY PLAN'][0]!.Plan)
      expect(read).toBeGreaterThan(0)
      // Six streams: a probe or two each to list them, and each one's newest ended run.
      expect(read).toBeLessThan(100)
    })
  })

  it('tells a connection still syncing by its running runs alone', async () => {
    await withTenant(handle.db, tenantId, async (tx) => {
      const status = (runId: string) =>
        tx.execute<{ status: string }>(
          sql`select ${connectedUnlessSyncing(connectorId, runId)} as status`,
        )
      // Another run (leads) is still running.
      expect((await status(runningId)).rows[0]!.status).toBe('syncing')

      const explained = await tx.execute<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(
        sql`explain (analyze, format json) select ${connectedUnlessSyncing(connectorId, runningId)}`,
      )
      const read = rowsRead(explained.rows[0]!['QUERY PLAN'][0]!.Plan)
      expect(read).toBeLessThan(10)
    })
  })
})
