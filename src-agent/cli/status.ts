/**
 * `gtm-agent status [--json]`: one screen for the operator. The agent's version, the database,
 * Temporal and its workers, then every connection of every tenant with its last run, lag, next
 * scheduled run and backlogs; what needs attention is listed last, and makes the exit code 1.
 */
import type { Command } from 'commander'
import { probeDatabase } from '../../db/probe.js'
import { describeError } from '../../shared/errors.js'
import { scrubString } from '../../shared/redact.js'
import { openDatabase } from '../config.js'
import { agentVersion } from '../layout.js'
import {
  lagSeconds,
  readConnectionsOverview,
  scheduleIntervalSeconds,
  type ConnectionOverview,
} from '../services/operations.js'
import { schemaVersion } from '../services/views.js'
import { readTemporalStatus, type TemporalStatus } from '../temporal/ops.js'
import { DEFAULT_RECONCILE_SECONDS, reconcileIntervalSeconds } from '../temporal/scheduler.js'
import type { CliContext } from './context.js'

/** A connection is behind when its lag passes this many schedule intervals. */
export const LAG_INTERVALS = 3
/** Queued writebacks or webhook events due this long (seconds) and still waiting need a look. */
export const BACKLOG_AGE_SECONDS = 3_600
const TIMEOUT_MS = 3_000

export interface StatusReport {
  version: string
  checkedAt: string
  healthy: boolean
  database: {
    reachable: boolean
    latencyMs: number | null
    migrations: { applied: number; shipped: number } | null
    error: string | null
  }
  temporal: {
    reachable: boolean
    address: string
    namespace: string
    taskQueue: string
    workers: number | null
    error: string | null
  }
  connections: ConnectionStatus[]
  /** Everything that needs attention, one sentence each; empty when healthy. */
  attention: string[]
}

export interface ConnectionStatus {
  tenantId: string
  connectorType: string
  status: string
  needsReauth: boolean
  lastSyncAt: string | null
  lagSeconds: number | null
  lastRun: {
    stream: string | null
    status: string
    startedAt: string
    finishedAt: string | null
    errorCode: string | null
    error: string | null
  } | null
  schedule: {
    cron: string | null
    paused: boolean
    intervalSeconds: number | null
    nextRunAt: string | null
  } | null
  /**
   * Where its schedule stands: in Temporal (`scheduled`, `paused`); not there yet for a new
   * connection the next reconcile pass will give one (`awaiting`), or past that (`missing`);
   * `unknown` when Temporal could not be asked; `none` for a disconnected connection.
   */
  scheduleState: 'scheduled' | 'paused' | 'awaiting' | 'missing' | 'unknown' | 'none'
  writebacks: { pending: number; failed: number }
  webhooks: { pending: number; failed: number }
  attention: string[]
}

/** Adds `status` to the program. */
export function registerStatusCommand(program: Command, ctx: CliContext): void {
  program
    .command('status')
    .description(
      'the agent at a glance: database, Temporal, every connection (exit 1 when something needs attention)',
    )
    .option('--json', 'print the report as JSON')
    .action(async (opts: { json?: boolean }) => {
      const report = await readStatus(ctx)
      if (opts.json) ctx.out.json(report)
      else printStatus(ctx, report)
      if (!report.healthy) process.exitCode = 1
    })
}

/** Reads every part; a part that cannot be read is reported, never thrown. */
export async function readStatus(ctx: CliContext, now = new Date()): Promise<StatusReport> {
  const temporalRead = readTemporalStatus(ctx.env, TIMEOUT_MS)
  const database: StatusReport['database'] = {
    reachable: false,
    latencyMs: null,
    migrations: null,
    error: null,
  }
  let overview: ConnectionOverview[] = []
  try {
    const opened = await openDatabase({ env: ctx.env, log: ctx.log })
    try {
      const probe = await probeDatabase(opened.handle.pool, { timeoutMs: TIMEOUT_MS })
      database.reachable = probe.reachable
      database.latencyMs = probe.latencyMs === null ? null : Math.round(probe.latencyMs)
      database.error = probe.error
      if (probe.reachable) {
        database.migrations = await schemaVersion(opened.handle)
        overview = await readConnectionsOverview(opened.handle)
      }
    } finally {
      await opened.close()
    }
  } catch (err) {
    database.error = scrubString(describeError(err))
  }
  const temporal = await temporalRead
  // The workers' reconcile pass gives a new connection its schedule; until two have gone by,
  // a connection without one is on its way, not missing.
  const config: string[] = []
  let reconcileSeconds = DEFAULT_RECONCILE_SECONDS
  try {
    reconcileSeconds = reconcileIntervalSeconds(ctx.env)
  } catch (err) {
    config.push(`${describeError(err)} The worker refuses to start with it.`)
  }
  const connections = overview.map((c) => connectionStatus(c, temporal, now, reconcileSeconds))
  const attention = [
    ...config,
    ...systemAttention(database, temporal),
    ...connections.flatMap((c) => c.attention.map((a) => `${c.tenantId}/${c.connectorType}: ${a}`)),
  ]
  const { schedules: _schedules, ...temporalView } = temporal
  return {
    version: agentVersion(),
    checkedAt: now.toISOString(),
    healthy: attention.length === 0,
    database,
    temporal: temporalView,
    connections,
    attention,
  }
}

// --- implementation ---

function systemAttention(database: StatusReport['database'], temporal: TemporalStatus): string[] {
  const found: string[] = []
  if (!database.reachable)
    found.push(`The database is not reachable: ${database.error ?? ''}`.trim())
  const m = database.migrations
  if (m && m.applied < m.shipped) {
    found.push(
      `The database has ${m.applied} of the ${m.shipped} migrations this agent needs: run gtm-agent migrate.`,
    )
  }
  if (!temporal.reachable) found.push(`Temporal is not reachable: ${temporal.error ?? ''}`.trim())
  else if (temporal.workers === 0) {
    found.push(
      `No worker polls the task queue "${temporal.taskQueue}": scheduled syncs do not run. Start one with gtm-agent worker.`,
    )
  }
  return found
}

/**
 * One connection's line of the report and what about it needs attention. A connection with no
 * schedule in Temporal needs attention once it is older than two reconcile passes
 * (`reconcileSeconds` apart): before that, the next pass creates its schedule.
 */
export function connectionStatus(
  c: ConnectionOverview,
  temporal: TemporalStatus,
  now: Date,
  reconcileSeconds: number,
): ConnectionStatus {
  const view = temporal.schedules.get(`${c.tenantId}:${c.connectorType}`)
  const interval = view ? scheduleIntervalSeconds(view.cron, now) : null
  const lag = lagSeconds(c, now)
  const attention: string[] = []
  const live = c.status !== 'disconnected'
  if (c.needsReauth)
    attention.push('needs re-auth: the source refused the stored credentials; reconnect it.')
  else if (c.status === 'error')
    attention.push(`in error: ${c.lastRun?.error ?? 'see its last run'}`)
  if (
    live &&
    lag !== null &&
    interval !== null &&
    !view?.paused &&
    lag > LAG_INTERVALS * interval
  ) {
    attention.push(
      `behind: last synced ${duration(lag)} ago, more than ${LAG_INTERVALS} schedule intervals (${duration(interval)}).`,
    )
  }
  const age = (d: Date | null): number =>
    d === null ? 0 : Math.round((now.getTime() - d.getTime()) / 1000)
  const scheduleState: ConnectionStatus['scheduleState'] = view
    ? view.paused
      ? 'paused'
      : 'scheduled'
    : !live
      ? 'none'
      : !temporal.reachable
        ? 'unknown'
        : age(c.createdAt) > 2 * reconcileSeconds
          ? 'missing'
          : 'awaiting'
  if (scheduleState === 'missing') {
    attention.push(
      `has no sync schedule in Temporal, ${duration(age(c.createdAt))} after it was connected: is a worker running its reconcile pass?`,
    )
  }
  if (age(c.writebacks.oldestDueAt) > BACKLOG_AGE_SECONDS) {
    attention.push(
      `writebacks due for ${duration(age(c.writebacks.oldestDueAt))} are still queued.`,
    )
  }
  if (age(c.webhooks.oldestPendingAt) > BACKLOG_AGE_SECONDS) {
    attention.push(
      `webhook events received ${duration(age(c.webhooks.oldestPendingAt))} ago are still unprocessed.`,
    )
  }
  const iso = (d: Date | null): string | null => (d ? d.toISOString() : null)
  return {
    tenantId: c.tenantId,
    connectorType: c.connectorType,
    status: c.status,
    needsReauth: c.needsReauth,
    lastSyncAt: iso(c.lastSyncAt),
    lagSeconds: lag,
    lastRun: c.lastRun && {
      stream: c.lastRun.stream,
      status: c.lastRun.status,
      startedAt: c.lastRun.startedAt.toISOString(),
      finishedAt: iso(c.lastRun.finishedAt),
      errorCode: c.lastRun.errorCode,
      error: c.lastRun.error === null ? null : scrubString(c.lastRun.error),
    },
    schedule: view
      ? {
          cron: view.cron,
          paused: view.paused,
          intervalSeconds: interval,
          nextRunAt: iso(view.nextRunAt),
        }
      : null,
    scheduleState,
    writebacks: { pending: c.writebacks.pending, failed: c.writebacks.failed },
    webhooks: { pending: c.webhooks.pending, failed: c.webhooks.failed },
    attention,
  }
}

function printStatus(ctx: CliContext, r: StatusReport): void {
  const db = r.database
  ctx.out.line(`gtm-agent ${r.version}, checked ${r.checkedAt}`)
  ctx.out.line(
    `Database:  ${
      db.reachable
        ? `reachable (${db.latencyMs ?? '?'} ms), migrations ${db.migrations ? `${db.migrations.applied}/${db.migrations.shipped}` : 'unknown'}`
        : `NOT REACHABLE: ${db.error ?? ''}`
    }`,
  )
  const t = r.temporal
  ctx.out.line(
    `Temporal:  ${
      t.reachable
        ? `${t.address} (${t.namespace}), task queue ${t.taskQueue}: ${t.workers ?? '?'} worker${t.workers === 1 ? '' : 's'} polling`
        : `NOT REACHABLE: ${t.error ?? ''}`
    }`,
  )
  ctx.out.line('')
  if (r.connections.length === 0) ctx.out.line('No connections.')
  else {
    ctx.out.table(
      ['TENANT', 'CONNECTOR', 'STATUS', 'LAST RUN', 'LAG', 'NEXT RUN', 'WRITEBACKS', 'WEBHOOKS'],
      r.connections.map((c) => [
        c.tenantId,
        c.connectorType,
        c.needsReauth ? 'needs re-auth' : c.status,
        c.lastRun
          ? `${c.lastRun.status} ${c.lastRun.finishedAt ?? c.lastRun.startedAt}${c.lastRun.errorCode ? ` (${c.lastRun.errorCode})` : ''}`
          : 'never',
        c.lagSeconds === null ? '-' : duration(c.lagSeconds),
        nextRunCell(c),
        `${c.writebacks.pending} queued, ${c.writebacks.failed} failed`,
        `${c.webhooks.pending} pending, ${c.webhooks.failed} failed`,
      ]),
    )
  }
  ctx.out.line('')
  if (r.attention.length === 0) ctx.out.line('All good: nothing needs attention.')
  else {
    ctx.out.line(`Needs attention (${r.attention.length}):`)
    for (const item of r.attention) ctx.out.line(`- ${item}`)
  }
}

/** The NEXT RUN column: when, or why there is no next run. */
function nextRunCell(c: ConnectionStatus): string {
  switch (c.scheduleState) {
    case 'scheduled':
      return c.schedule?.nextRunAt ?? '-'
    case 'paused':
      return 'paused'
    case 'awaiting':
      return 'awaiting schedule'
    case 'missing':
      return 'no schedule'
    case 'unknown':
      return 'unknown (Temporal)'
    case 'none':
      return '-'
  }
}

/** 45 s, 12 min, 3 h 5 min, 2 d 4 h. */
function duration(seconds: number): string {
  if (seconds < 60) return `${seconds} s`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 60) return `${minutes} min`
  const hours = Math.floor(minutes / 60)
  if (hours < 48) return `${hours} h${minutes % 60 ? ` ${minutes % 60} min` : ''}`
  return `${Math.floor(hours / 24)} d${hours % 24 ? ` ${hours % 24} h` : ''}`
}
