/**
 * What an operator watches, read across every tenant: each connection's state, its latest run,
 * how long since it last synced, its queued writebacks and its webhook inbox backlog. The
 * metrics endpoint reads it at scrape time and `gtm-agent status` prints it. Each tenant is read
 * in its own transaction (row-level security), and nothing in it is a secret or a record value.
 */
import { sql } from 'drizzle-orm'
import type { DbHandle } from '../../db/client.js'
import { withTenant } from '../../db/tenant.js'
import { nextCronRuns } from '../../shared/cron.js'
import type { ConnectorStatus } from '../../shared/schemas.js'
import { needsReauth } from '../pipeline/connection.js'
import { listTenants } from '../pipeline/tenants.js'
import { guard } from './views.js'

export interface ConnectionOverview {
  tenantId: string
  connectorType: string
  status: ConnectorStatus
  needsReauth: boolean
  /** The last time a sync of it succeeded (any stream); null when none has yet. */
  lastSyncAt: Date | null
  createdAt: Date
  /** Its most recent run (of any stream), running ones included. */
  lastRun: {
    stream: string | null
    status: string
    startedAt: Date
    finishedAt: Date | null
    errorCode: string | null
    error: string | null
  } | null
  writebacks: {
    pending: number
    failed: number
    /** The pending item waiting longest past its due time (null when none is due). */
    oldestDueAt: Date | null
  }
  webhooks: {
    pending: number
    failed: number
    oldestPendingAt: Date | null
  }
}

/** Every connection of every tenant, ordered by tenant and connector type. */
export async function readConnectionsOverview(handle: DbHandle): Promise<ConnectionOverview[]> {
  return guard('reading the connections of every tenant', async () => {
    const all: ConnectionOverview[] = []
    for (const tenant of await listTenants(handle.db)) {
      all.push(...(await tenantOverview(handle, tenant.id)))
    }
    return all
  })
}

/**
 * Seconds a connection is behind: since its last successful sync, or since it was connected
 * when it never synced. Null for a disconnected connection (nothing is expected of it).
 */
export function lagSeconds(connection: ConnectionOverview, now: Date): number | null {
  if (connection.status === 'disconnected') return null
  const since = connection.lastSyncAt ?? connection.createdAt
  return Math.max(0, Math.round((now.getTime() - since.getTime()) / 1000))
}

/**
 * The longest gap between the next runs of a schedule's cron, in seconds (a weekday schedule's
 * weekend counts); null when the cron is unknown or runs fewer than twice more.
 */
export function scheduleIntervalSeconds(cron: string | null, now: Date): number | null {
  if (cron === null) return null
  let runs: Date[]
  try {
    runs = nextCronRuns(cron, now, 12)
  } catch {
    return null
  }
  let longest = 0
  for (let i = 1; i < runs.length; i++) {
    longest = Math.max(longest, runs[i]!.getTime() - runs[i - 1]!.getTime())
  }
  return runs.length < 2 ? null : Math.round(longest / 1000)
}

// --- implementation ---

interface ConnectionRow extends Record<string, unknown> {
  id: string
  type: string
  status: ConnectorStatus
  last_sync_at: Date | null
  last_sync_error: string | null
  created_at: Date
  run_stream: string | null
  run_status: string | null
  run_started_at: Date | null
  run_finished_at: Date | null
  run_error_code: string | null
  run_error: string | null
}

interface BacklogRow extends Record<string, unknown> {
  connector: string
  pending: number
  failed: number
  oldest: Date | null
}

async function tenantOverview(handle: DbHandle, tenantId: string): Promise<ConnectionOverview[]> {
  return withTenant(handle.db, tenantId, async (tx) => {
    const connections = await tx.execute<ConnectionRow>(sql`
      select c.id, c.type, c.status, c.last_sync_at, c.last_sync_error, c.created_at,
             r.stream as run_stream, r.status as run_status, r.started_at as run_started_at,
             r.finished_at as run_finished_at, r.error_code as run_error_code, r.error as run_error
        from connectors c
        left join lateral (
          select stream, status, started_at, finished_at, error_code, error
            from sync_runs s
           where s.tenant_id = c.tenant_id and s.connector_id = c.id
           order by s.started_at desc
           limit 1
        ) r on true
       where c.tenant_id = ${tenantId}
       order by c.type`)
    const writebacks = await tx.execute<BacklogRow>(sql`
      select connector_type as connector,
             count(*) filter (where status = 'pending')::int as pending,
             count(*) filter (where status = 'failed')::int as failed,
             min(coalesce(next_attempt_at, created_at))
               filter (where status = 'pending' and coalesce(next_attempt_at, created_at) <= now())
               as oldest
        from writeback_queue
       where tenant_id = ${tenantId} and status in ('pending', 'failed')
       group by connector_type`)
    const webhooks = await tx.execute<BacklogRow>(sql`
      select source as connector,
             count(*) filter (where status = 'pending')::int as pending,
             count(*) filter (where status = 'failed')::int as failed,
             min(received_at) filter (where status = 'pending') as oldest
        from webhook_inbox
       where tenant_id = ${tenantId} and status in ('pending', 'failed')
       group by source`)
    const backlog = (rows: BacklogRow[], type: string) => {
      const row = rows.find((r) => r.connector === type)
      return {
        pending: Number(row?.pending ?? 0),
        failed: Number(row?.failed ?? 0),
        oldest: toDate(row?.oldest ?? null),
      }
    }
    return connections.rows.map((row) => {
      const writeback = backlog(writebacks.rows, row.type)
      const webhook = backlog(webhooks.rows, row.type)
      return {
        tenantId,
        connectorType: row.type,
        status: row.status,
        needsReauth: needsReauth({ status: row.status, lastSyncError: row.last_sync_error }),
        lastSyncAt: toDate(row.last_sync_at),
        createdAt: toDate(row.created_at) ?? new Date(0),
        lastRun:
          row.run_status === null
            ? null
            : {
                stream: row.run_stream,
                status: row.run_status,
                startedAt: toDate(row.run_started_at) ?? new Date(0),
                finishedAt: toDate(row.run_finished_at),
                errorCode: row.run_error_code,
                error: row.run_error,
              },
        writebacks: {
          pending: writeback.pending,
          failed: writeback.failed,
          oldestDueAt: writeback.oldest,
        },
        webhooks: {
          pending: webhook.pending,
          failed: webhook.failed,
          oldestPendingAt: webhook.oldest,
        },
      }
    })
  })
}

/** A timestamp from a raw query (node-postgres parses timestamptz, but be sure). */
function toDate(value: Date | string | null): Date | null {
  if (value === null) return null
  const date = value instanceof Date ? value : new Date(value)
  return Number.isNaN(date.getTime()) ? null : date
}
