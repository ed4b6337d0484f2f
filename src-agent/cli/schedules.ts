/**
 * The CLI's Temporal commands: `worker`, `schedule`, `schedules`, and `sync --via-temporal`
 * (syncViaTemporal, called by index.ts's `sync`). Results go to stdout, progress to stderr.
 */
import type { Command } from 'commander'
import type { DbHandle } from '../../db/client.js'
import { AppError, ConfigError } from '../../shared/errors.js'
import { DEFAULT_SYNC_CRON, syncScheduleId } from '../../shared/temporal.js'
import { dataDir, loadConnectorModules, openDatabase, type Env } from '../config.js'
import { connectorRegistry } from '../connectors/registry.js'
import { readTemporalSettings, withTemporal, type TemporalConnection } from '../temporal/client.js'
import { findRunningDevServer } from '../temporal/dev-server.js'
import {
  awaitSync,
  deleteSchedule,
  describeSchedule,
  ensureSchedule,
  listSchedules,
  onConnected,
  onDisconnected,
  pauseSchedule,
  resumeSchedule,
  startSync,
  triggerSchedule,
  type SchedulerDeps,
  type ScheduleView,
  type SyncOutcomeView,
} from '../temporal/scheduler.js'
import { takeOverShutdownSignals } from '../shutdown.js'
import { runWorker } from '../temporal/worker.js'
import { wakeWriteback } from '../temporal/writeback.js'
import { syncProgressQuery, type SyncProgressView } from '../temporal/workflows.js'
import type { CliOutput } from './output.js'
import type { CliContext } from './context.js'

/** Adds `worker`, `schedule <type>` and `schedules` to the program. */
export function registerTemporalCommands(program: Command, ctx: CliContext): void {
  program
    .command('worker')
    .description(
      'run the Temporal worker: scheduled syncs and writebacks (Ctrl-C stops it gracefully)',
    )
    .action(async () => {
      const controller = new AbortController()
      const restoreSignals = takeOverShutdownSignals(controller)
      try {
        // A worker reports what it does at info level unless LOG_LEVEL says otherwise.
        const log = ctx.env.LOG_LEVEL ? ctx.log : ctx.log.child({}, { level: 'info' })
        await runWorker({ env: ctx.env, log, signal: controller.signal })
      } finally {
        restoreSignals()
      }
    })

  program
    .command('schedule <type>')
    .description(
      'create or change a connection’s sync schedule, or pause, resume, trigger or delete it',
    )
    .requiredOption('--tenant <id>', 'tenant id')
    .option('--cron <expr>', 'when to sync, as a cron expression (default "*/15 * * * *")')
    .option('--pause', 'pause the schedule')
    .option('--resume', 'resume a paused schedule')
    .option('--trigger', 'run a sync now (skipped if one is running)')
    .option('--delete', 'delete the schedule')
    .option('--json', 'print JSON')
    .action(async (type: string, opts: ScheduleOpts) => {
      const verb = scheduleVerb(opts)
      await loadConnectorModules(ctx.env)
      connectorRegistry.get(type)
      await withClients(ctx, async (deps) => {
        const target = { tenantId: opts.tenant, connectorType: type }
        if (verb === 'delete') {
          await deleteSchedule(deps, target)
          return ctx.out.line(
            opts.json
              ? JSON.stringify({ scheduleId: syncScheduleId(opts.tenant, type), deleted: true })
              : `Deleted the ${type} sync schedule of tenant "${opts.tenant}".`,
          )
        }
        const ensured = await ensureSchedule(deps, {
          ...target,
          ...(opts.cron === undefined ? {} : { cron: opts.cron }),
        })
        if (verb === 'pause') await pauseSchedule(deps, target)
        if (verb === 'resume') await resumeSchedule(deps, target)
        const triggered = verb === 'trigger' ? await triggerSchedule(deps, target) : undefined
        const view = await describeSchedule(deps.client, target)
        if (!view) throw new AppError('internal', `The schedule ${ensured.scheduleId} vanished.`)
        if (opts.json) {
          return ctx.out.json({
            ...view,
            outcome: ensured.outcome,
            sync: triggered?.outcome ?? null,
          })
        }
        const did =
          triggered?.outcome === 'started'
            ? `Started a sync now (${triggered.workflowId}); schedule`
            : triggered
              ? 'A sync is already running, so none was started; schedule'
              : ensured.outcome === 'created'
                ? 'Created schedule'
                : ensured.outcome === 'updated'
                  ? 'Updated schedule'
                  : 'Schedule'
        ctx.out.line(`${did} ${describeView(view)}`)
      })
    })

  program
    .command('schedules')
    .description('list the sync schedules')
    .option('--tenant <id>', 'only this tenant’s')
    .option('--json', 'print JSON')
    .action(async (opts: { tenant?: string; json?: boolean }) => {
      await withTemporal(ctx, async ({ client }) => {
        const views = await listSchedules(client, opts.tenant ? { tenantId: opts.tenant } : {})
        if (opts.json) return ctx.out.json(views)
        if (views.length === 0)
          return ctx.out.line(
            'No sync schedules yet. Create one with: gtm-agent schedule <type> --tenant <id>',
          )
        ctx.out.table(
          ['TENANT', 'CONNECTOR', 'CRON', 'STATE', 'NEXT RUN', 'LAST RUN'],
          views.map((v) => [
            v.tenantId,
            v.connectorType,
            v.cron ?? '?',
            stateOf(v),
            v.nextRunAt?.toISOString() ?? '-',
            v.lastRunAt?.toISOString() ?? '-',
          ]),
        )
      })
    })
}

/**
 * `sync <type> --via-temporal`: starts the connection's sync workflow, or follows the one
 * already running, shows its progress on stderr, and prints the outcome. Throws (exit 1) when
 * the sync did not succeed.
 */
export async function syncViaTemporal(
  ctx: CliContext,
  opts: { type: string; tenant: string; full?: boolean; pageSize?: number; json?: boolean },
): Promise<SyncOutcomeView> {
  await loadConnectorModules(ctx.env)
  connectorRegistry.get(opts.type)
  return withClients(ctx, async (deps, temporal) => {
    await requireWorker(temporal)
    const started = await startSync(deps, {
      tenantId: opts.tenant,
      connectorType: opts.type,
      ...(opts.full ? { full: true } : {}),
      ...(opts.pageSize ? { tuning: { pageSize: opts.pageSize } } : {}),
    })
    if (started.outcome === 'already_running') {
      process.stderr.write(
        `A sync of ${opts.type} for tenant "${opts.tenant}" is already running; following it.\n`,
      )
    }
    const stopProgress = showProgress(started.handle)
    let outcome: SyncOutcomeView
    try {
      outcome = await awaitSync(started.handle)
    } finally {
      await stopProgress()
    }
    if (opts.json) ctx.out.json(outcome)
    else printOutcome(ctx.out, outcome)
    if (outcome.status !== 'succeeded') {
      throw new AppError(
        'sync_incomplete',
        'error' in outcome && outcome.error ? outcome.error : `The sync ${outcome.status}.`,
      )
    }
    return outcome
  })
}

export type ConnectionChangeResult =
  | {
      scheduled: true
      change: 'connected'
      scheduleId: string
      cron: string
      workflowId: string
      /** `already_running`: a sync of the connection was running and was left to finish. */
      sync: 'started' | 'already_running'
      full: boolean
      /** Whether a worker polls the task queue (else the sync waits for one). */
      workerRunning: boolean
    }
  | { scheduled: true; change: 'disconnected'; scheduleId: string; paused: boolean }
  | { scheduled: false; reason: string }

/**
 * Tells Temporal that a connection was made or dropped (onConnected / onDisconnected), but only
 * when Temporal is already there: TEMPORAL_ADDRESS is set, or the data directory's dev server
 * is running. Nothing is started otherwise; the worker's reconcile pass catches up when it runs.
 * Temporal errors are thrown. Prints nothing: the caller words the result.
 */
export async function notifyConnectionChange(
  ctx: Omit<CliContext, 'out'>,
  input: { tenantId: string; connectorType: string; change: 'connected' | 'disconnected' },
  options: { handle?: DbHandle } = {},
): Promise<ConnectionChangeResult> {
  const env = await runningTemporal(ctx.env)
  if (!env) return { scheduled: false, reason: NO_TEMPORAL }
  const target = { tenantId: input.tenantId, connectorType: input.connectorType }
  const run = async (handle: DbHandle): Promise<ConnectionChangeResult> =>
    withTemporal({ env, log: ctx.log }, async (temporal) => {
      const deps = schedulerDeps(ctx, handle, temporal)
      const scheduleId = syncScheduleId(target.tenantId, target.connectorType)
      if (input.change === 'disconnected') {
        const paused = await onDisconnected(deps, target)
        return { scheduled: true, change: 'disconnected', scheduleId, paused }
      }
      const workerRunning = await hasWorker(temporal)
      const done = await onConnected(deps, target)
      const view = await describeSchedule(temporal.client, target)
      return {
        scheduled: true,
        change: 'connected',
        scheduleId: done.scheduleId,
        cron: view?.cron ?? DEFAULT_SYNC_CRON,
        workflowId: done.sync.workflowId,
        sync: done.sync.outcome,
        full: done.full,
        workerRunning,
      }
    })
  if (options.handle) return run(options.handle)
  const database = await openDatabase(ctx)
  try {
    return await run(database.handle)
  } finally {
    await database.close()
  }
}

const NO_TEMPORAL = 'TEMPORAL_ADDRESS is not set and no local Temporal dev server is running'

/**
 * The environment to reach Temporal with when it is already there (TEMPORAL_ADDRESS is set, or
 * the data directory's dev server is running), else undefined: nothing is started.
 */
async function runningTemporal(env: Env): Promise<Env | undefined> {
  const settings = await readTemporalSettings(env)
  if (settings.address) return env
  const running = await findRunningDevServer(dataDir(env))
  // Its address, so that a server stopping meanwhile is an error, not a new server.
  return running ? { ...env, TEMPORAL_ADDRESS: running.address } : undefined
}

export type WritebackWakeResult =
  { woken: true; workflowId: string; workerRunning: boolean } | { woken: false; reason: string }

/**
 * Wakes (or starts) the connection's writeback workflow after items were queued, when Temporal
 * is already there; otherwise says why not. Temporal errors are thrown. Prints nothing.
 */
export async function wakeWritebackIfRunning(
  ctx: Omit<CliContext, 'out'>,
  target: { tenantId: string; connectorType: string },
): Promise<WritebackWakeResult> {
  const env = await runningTemporal(ctx.env)
  if (!env) return { woken: false, reason: NO_TEMPORAL }
  return withTemporal({ env, log: ctx.log }, async (temporal) => {
    const workerRunning = await hasWorker(temporal)
    const workflowId = await wakeWriteback(
      { client: temporal.client, taskQueue: temporal.settings.taskQueue },
      target,
    )
    return { woken: true, workflowId, workerRunning }
  })
}

/** The line `connect` prints about the connection's schedule and first sync. */
export function describeConnectionChange(result: ConnectionChangeResult): string | undefined {
  if (!result.scheduled) {
    return 'No Temporal worker found: run `gtm-agent worker` to sync on a schedule (the first sync reads everything).'
  }
  if (result.change === 'disconnected') {
    return result.paused
      ? `Paused its sync schedule (${result.scheduleId}); reconnecting resumes it.`
      : undefined
  }
  const sync =
    result.sync === 'already_running'
      ? `a sync is already running (workflow ${result.workflowId})`
      : `${result.full ? 'a full' : 'an incremental'} sync started (workflow ${result.workflowId})`
  const waiting = result.workerRunning ? '' : ' It runs once a worker is up: `gtm-agent worker`.'
  return `Scheduled ${describeCron(result.cron)}; ${sync}.${waiting}`
}

// --- implementation ---

interface ScheduleOpts {
  tenant: string
  cron?: string
  pause?: boolean
  resume?: boolean
  trigger?: boolean
  delete?: boolean
  json?: boolean
}

function scheduleVerb(opts: ScheduleOpts): 'pause' | 'resume' | 'trigger' | 'delete' | 'ensure' {
  const verbs = (['pause', 'resume', 'trigger', 'delete'] as const).filter((v) => opts[v])
  if (verbs.length > 1) {
    throw new ConfigError('config_invalid', `Choose one of --${verbs.join(', --')}, not several.`)
  }
  if (verbs[0] === 'delete' && opts.cron !== undefined) {
    throw new ConfigError('config_invalid', '--delete cannot be combined with --cron.')
  }
  return verbs[0] ?? 'ensure'
}

/** Opens the database and Temporal, runs `fn`, and lets go of both. */
async function withClients<T>(
  ctx: CliContext,
  fn: (deps: SchedulerDeps, temporal: TemporalConnection) => Promise<T>,
): Promise<T> {
  const database = await openDatabase(ctx)
  try {
    return await withTemporal(ctx, (temporal) =>
      fn(schedulerDeps(ctx, database.handle, temporal), temporal),
    )
  } finally {
    await database.close()
  }
}

function schedulerDeps(
  ctx: Pick<CliContext, 'userId'>,
  handle: DbHandle,
  temporal: TemporalConnection,
): SchedulerDeps {
  return {
    client: temporal.client,
    taskQueue: temporal.settings.taskQueue,
    handle,
    userId: ctx.userId,
  }
}

/** Whether a worker polls the task queue for workflow tasks. */
async function hasWorker(temporal: TemporalConnection): Promise<boolean> {
  const { namespace, taskQueue } = temporal.settings
  const response = await temporal.client.workflowService.describeTaskQueue({
    namespace,
    taskQueue: { name: taskQueue },
    taskQueueType: 1, // TASK_QUEUE_TYPE_WORKFLOW
  })
  return (response.pollers ?? []).length > 0
}

/** "every 15 minutes" for the common crons, else the cron itself. */
function describeCron(cron: string): string {
  const minutes = /^\*\/(\d+) \* \* \* \*$/.exec(cron)?.[1]
  if (minutes) return minutes === '1' ? 'every minute' : `every ${minutes} minutes`
  if (cron === '0 * * * *' || cron === '@hourly') return 'every hour'
  return `by the cron "${cron}"`
}

/** A workflow started with no worker polling would wait forever: say so instead. */
async function requireWorker(temporal: TemporalConnection): Promise<void> {
  const { taskQueue } = temporal.settings
  if (!(await hasWorker(temporal))) {
    throw new AppError(
      'config_missing',
      `No worker is serving the task queue "${taskQueue}" on ${temporal.settings.address}. Start one with: gtm-agent worker`,
    )
  }
}

/** Polls the syncProgress query and renders it on stderr until stopped. */
function showProgress(handle: {
  query: (q: typeof syncProgressQuery) => Promise<SyncProgressView>
}): () => Promise<void> {
  const tty = process.stderr.isTTY
  let shown = 0
  let last = ''
  let stopped = false
  const render = (p: SyncProgressView | undefined): void => {
    if (!p) return
    const line = `${p.phase}: ${p.pages} pages, ${p.created} created, ${p.updated} updated, ${p.deleted} deleted, ${p.errors} errors`
    if (line === last) return
    last = line
    if (tty) {
      process.stderr.write(`\r${line.padEnd(shown)}`)
      shown = line.length
    } else {
      process.stderr.write(`${line}\n`)
    }
  }
  const loop = (async () => {
    while (!stopped) {
      try {
        render(await handle.query(syncProgressQuery))
      } catch {
        // Between runs (continue-as-new) or before the first workflow task: try again.
      }
      await new Promise((resolve) => setTimeout(resolve, 500))
    }
  })()
  return async () => {
    stopped = true
    await loop
    // The last chunk's counts and the final phase, which the polling may have missed.
    render(await handle.query(syncProgressQuery).catch(() => undefined))
    if (tty && shown > 0) process.stderr.write('\n')
  }
}

function printOutcome(out: CliOutput, outcome: SyncOutcomeView): void {
  const rows: Array<[string, string | number]> = [['workflow', outcome.workflowId]]
  if ('runId' in outcome) rows.push(['run', outcome.runId], ['mode', outcome.mode])
  rows.push(['status', outcome.status])
  if ('pages' in outcome) {
    rows.push(
      ['pages', outcome.pages],
      ['created', outcome.created],
      ['updated', outcome.updated],
      ['deleted', outcome.deleted],
      ['errors', outcome.errors],
    )
  }
  if ('error' in outcome && outcome.error) rows.push(['error', outcome.error])
  out.line(rows.map(([k, v]) => `${`${k}:`.padEnd(10)}${v}`).join('\n'))
}

function describeView(v: ScheduleView): string {
  const next = v.paused ? '' : v.nextRunAt ? `, next run ${v.nextRunAt.toISOString()}` : ''
  return `${v.scheduleId}: ${v.cron ?? 'custom spec'}, ${stateOf(v)}${next}.`
}

function stateOf(v: ScheduleView): string {
  return v.paused ? 'paused' : v.running ? 'running' : 'active'
}
