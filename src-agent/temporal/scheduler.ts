/**
 * Schedules and on-demand syncs of connections, over a Temporal client. Every mutation (schedule
 * create/update/pause/resume/trigger/delete, sync request) is audited in the tenant's audit_log.
 */
import {
  ScheduleAlreadyRunning,
  ScheduleNotFoundError,
  ScheduleOverlapPolicy,
  WorkflowExecutionAlreadyStartedError,
  WorkflowFailedError,
  WorkflowIdConflictPolicy,
  WorkflowIdReusePolicy,
  type Client,
  type ScheduleDescription,
  type ScheduleOptionsStartWorkflowAction,
  type WorkflowHandle,
} from '@temporalio/client'
import { ApplicationFailure } from '@temporalio/common'
import { and, eq, ne, sql } from 'drizzle-orm'
import type { DbHandle } from '../../db/client.js'
import { connectors, syncRuns } from '../../db/schema/index.js'
import { withTenant } from '../../db/tenant.js'
import { checkCron as checkCronExpression } from '../../shared/cron.js'
import { AppError, ConfigError, describeError } from '../../shared/errors.js'
import {
  DEFAULT_SYNC_CRON,
  parseSyncScheduleId,
  syncScheduleId,
  syncWorkflowId,
} from '../../shared/temporal.js'
import { recordAudit } from '../audit/audit.js'
import type { Env } from '../config.js'
import type { ConnectorRegistry } from '../connectors/registry.js'
import type { Logger } from '../logging/logger.js'
import { findConnection } from '../pipeline/connection.js'
import { hasDueWriteback } from '../pipeline/writeback/status.js'
import { listTenants } from '../pipeline/tenants.js'
import {
  launchSync,
  syncConnector,
  type LaunchSyncInput,
  type SyncTuning,
  type SyncWorkflowFailure,
  type SyncWorkflowResult,
} from './workflows.js'
import { wakeWriteback } from './writeback.js'

/** Seconds between two reconcile passes unless GTM_SCHEDULE_RECONCILE_SECONDS says otherwise. */
export const DEFAULT_RECONCILE_SECONDS = 60
const MAX_RECONCILE_SECONDS = 86_400

/** GTM_SCHEDULE_RECONCILE_SECONDS: a whole number of seconds from 1 to 86400 (default 60). */
export function reconcileIntervalSeconds(env: Env = process.env): number {
  const raw = env.GTM_SCHEDULE_RECONCILE_SECONDS?.trim()
  if (!raw) return DEFAULT_RECONCILE_SECONDS
  const seconds = Number(raw)
  if (!/^\d+$/.test(raw) || seconds < 1 || seconds > MAX_RECONCILE_SECONDS) {
    throw new ConfigError(
      'config_invalid',
      `GTM_SCHEDULE_RECONCILE_SECONDS must be a whole number of seconds from 1 to ${MAX_RECONCILE_SECONDS}, not "${raw}".`,
    )
  }
  return seconds
}

export interface SchedulerDeps {
  client: Client
  taskQueue: string
  handle: DbHandle
  /** Who is acting, for the audit log. */
  userId: string
}

export interface ConnectionRef {
  tenantId: string
  connectorType: string
}

/** A laptop that wakes after a night runs a missed sync once, not forty times. */
export const CATCHUP_WINDOW_MS = 60_000

export interface ScheduleView extends ConnectionRef {
  scheduleId: string
  /** As given when created or changed (null for a schedule made elsewhere). */
  cron: string | null
  paused: boolean
  note: string | null
  nextRunAt: Date | null
  lastRunAt: Date | null
  /** Whether an action it started is still running. */
  running: boolean
}

/**
 * Creates the connection's sync schedule, or brings an existing one up to date (task queue,
 * policies, and the cron when one is given). Idempotent: an up-to-date schedule is left alone
 * and not audited.
 */
export async function ensureSchedule(
  deps: SchedulerDeps,
  target: ConnectionRef & { cron?: string; paused?: boolean },
): Promise<{ scheduleId: string; outcome: 'created' | 'updated' | 'unchanged'; cron: string }> {
  const scheduleId = syncScheduleId(target.tenantId, target.connectorType)
  if (target.cron !== undefined) checkCron(target.cron)
  const connectorId = await requireConnection(deps.handle, target)
  const handle = deps.client.schedule.getHandle(scheduleId)
  const existing = await describeOrUndefined(handle)
  const cron = target.cron ?? (existing ? cronOf(existing) : null) ?? DEFAULT_SYNC_CRON
  const action = launchAction(deps.taskQueue, target, cron)
  if (existing && isUpToDate(existing, action, target)) {
    return { scheduleId, outcome: 'unchanged', cron }
  }
  const outcome = existing ? 'updated' : 'created'
  await audited(
    deps,
    target,
    {
      action: `schedule.${outcome === 'created' ? 'create' : 'update'}`,
      scheduleId,
      connectorId,
      after: { cron, paused: target.paused ?? existing?.state.paused ?? false },
      ...(existing ? { before: { cron: cronOf(existing), paused: existing.state.paused } } : {}),
    },
    async () => {
      if (!existing) {
        try {
          await deps.client.schedule.create({
            scheduleId,
            spec: { cronExpressions: [cron] },
            action,
            policies: {
              overlap: ScheduleOverlapPolicy.SKIP,
              catchupWindow: CATCHUP_WINDOW_MS,
              pauseOnFailure: false,
            },
            state: { paused: target.paused ?? false },
          })
          return
        } catch (err) {
          // Created meanwhile by another process: update it below.
          if (!(err instanceof ScheduleAlreadyRunning)) throw invalidCron(err, cron)
        }
      }
      await handle
        .update((previous) => ({
          spec: target.cron === undefined && existing ? previous.spec : { cronExpressions: [cron] },
          action,
          policies: {
            overlap: ScheduleOverlapPolicy.SKIP,
            catchupWindow: CATCHUP_WINDOW_MS,
            pauseOnFailure: false,
          },
          state: {
            paused: target.paused ?? previous.state.paused,
            ...(previous.state.note ? { note: previous.state.note } : {}),
          },
        }))
        .catch((err: unknown) => {
          throw invalidCron(err, cron)
        })
    },
  )
  return { scheduleId, outcome, cron }
}

/** Pauses the connection's schedule (a running sync finishes). */
export async function pauseSchedule(
  deps: SchedulerDeps,
  target: ConnectionRef,
  note?: string,
): Promise<void> {
  const handle = await existingSchedule(deps.client, target)
  await audited(deps, target, { action: 'schedule.pause', scheduleId: handle.scheduleId }, () =>
    handle.pause(note ?? `Paused by ${deps.userId}`),
  )
}

/** Resumes a paused schedule. */
export async function resumeSchedule(deps: SchedulerDeps, target: ConnectionRef): Promise<void> {
  const handle = await existingSchedule(deps.client, target)
  await audited(deps, target, { action: 'schedule.resume', scheduleId: handle.scheduleId }, () =>
    handle.unpause(`Resumed by ${deps.userId}`),
  )
}

/**
 * Runs the schedule's sync now; skipped (reported "already running", not queued) while a sync
 * of the connection runs. It starts the sync under its fixed workflow id rather than through
 * Temporal's schedule trigger: a trigger's overlap policy is applied when Temporal gets to the
 * trigger, which can be after a short run already finished, so two triggers sent together could
 * run twice in a row. A start under the fixed id decides at once.
 */
export async function triggerSchedule(
  deps: SchedulerDeps,
  target: ConnectionRef & { tuning?: SyncTuning },
): Promise<StartedSync> {
  await existingSchedule(deps.client, target)
  return startSync(deps, target, 'schedule.trigger')
}

/** Deletes the connection's schedule; a running sync is not stopped. */
export async function deleteSchedule(deps: SchedulerDeps, target: ConnectionRef): Promise<void> {
  const handle = await existingSchedule(deps.client, target)
  await audited(deps, target, { action: 'schedule.delete', scheduleId: handle.scheduleId }, () =>
    handle.delete(),
  )
}

/** The connection's schedule, or undefined when it has none. */
export async function describeSchedule(
  client: Client,
  target: ConnectionRef,
): Promise<ScheduleView | undefined> {
  const scheduleId = syncScheduleId(target.tenantId, target.connectorType)
  const description = await describeOrUndefined(client.schedule.getHandle(scheduleId))
  return description ? toView(scheduleId, target, description) : undefined
}

/** Every connection schedule (of one tenant, if given), ordered by id. */
export async function listSchedules(
  client: Client,
  filter: { tenantId?: string } = {},
): Promise<ScheduleView[]> {
  const views: ScheduleView[] = []
  for await (const summary of client.schedule.list()) {
    const ref = parseSyncScheduleId(summary.scheduleId)
    if (!ref || (filter.tenantId && ref.tenantId !== filter.tenantId)) continue
    const view = await describeSchedule(client, ref)
    if (view) views.push(view)
  }
  return views.sort((a, b) => a.scheduleId.localeCompare(b.scheduleId))
}

export interface StartedSync {
  /** `already_running`: a sync of the connection was running; `handle` follows that one. */
  outcome: 'started' | 'already_running'
  workflowId: string
  /** The run this request started (when it started one). */
  firstExecutionRunId?: string
  handle: WorkflowHandle<typeof syncConnector>
}

/**
 * Starts the connection's sync workflow, or joins the one already running (never a second
 * one: the workflow id is fixed and a running id is never reused).
 */
export async function startSync(
  deps: SchedulerDeps,
  target: ConnectionRef & {
    stream?: string
    partition?: string
    full?: boolean
    tuning?: SyncTuning
  },
  auditAction: 'sync.request' | 'schedule.trigger' = 'sync.request',
): Promise<StartedSync> {
  const workflowId = syncWorkflowId(target.tenantId, target.connectorType)
  const connectorId = await requireConnection(deps.handle, target)
  let started: StartedSync
  try {
    const handle = await deps.client.workflow.start(syncConnector, {
      workflowId,
      taskQueue: deps.taskQueue,
      args: [
        {
          tenantId: target.tenantId,
          connectorType: target.connectorType,
          triggeredBy: deps.userId,
          ...(target.stream !== undefined ? { stream: target.stream } : {}),
          ...(target.partition !== undefined ? { partition: target.partition } : {}),
          ...(target.full ? { full: true } : {}),
          ...(target.tuning ? { tuning: target.tuning } : {}),
        },
      ],
      // A finished sync's id may be used again; a running one's never.
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      workflowIdConflictPolicy: WorkflowIdConflictPolicy.FAIL,
    })
    started = {
      outcome: 'started',
      workflowId,
      firstExecutionRunId: handle.firstExecutionRunId,
      handle,
    }
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err
    started = {
      outcome: 'already_running',
      workflowId,
      handle: deps.client.workflow.getHandle<typeof syncConnector>(workflowId),
    }
  }
  await withTenant(deps.handle.db, target.tenantId, (tx) =>
    recordAudit(tx, {
      tenantId: target.tenantId,
      userId: deps.userId,
      action: auditAction,
      resource: 'connector',
      resourceId: connectorId,
      metadata: {
        connectorType: target.connectorType,
        scheduleId: syncScheduleId(target.tenantId, target.connectorType),
        workflowId,
        outcome: started.outcome,
        mode: target.full ? 'full' : 'incremental',
      },
    }),
  )
  return started
}

export type SyncOutcomeView =
  | (SyncWorkflowResult & { workflowId: string })
  | (SyncWorkflowFailure & { workflowId: string })
  | { workflowId: string; status: 'failed'; error: string; errorCode: string }

/** Waits for a sync workflow (across continue-as-new) and returns its outcome; never throws for a failed sync. */
export async function awaitSync(
  handle: WorkflowHandle<typeof syncConnector>,
): Promise<SyncOutcomeView> {
  try {
    return { ...(await handle.result()), workflowId: handle.workflowId }
  } catch (err) {
    if (!(err instanceof WorkflowFailedError)) throw err
    const cause = err.cause
    if (cause instanceof ApplicationFailure) {
      const details = cause.details?.[0] as SyncWorkflowFailure | undefined
      if (details?.status === 'failed') return { ...details, workflowId: handle.workflowId }
      return {
        workflowId: handle.workflowId,
        status: 'failed',
        error: cause.message,
        errorCode: cause.type ?? 'internal',
      }
    }
    return {
      workflowId: handle.workflowId,
      status: 'failed',
      error: cause?.message ?? err.message,
      errorCode: 'internal',
    }
  }
}

/** The note a schedule gets when its connection is disconnected; reconnecting resumes it. */
export const DISCONNECTED_NOTE = 'Paused because the connection was disconnected.'

/**
 * What the connect flow calls after a connection succeeded: makes sure it has a schedule (and
 * resumes one that was paused by a disconnect) and starts a sync right away, a full one if the
 * connection has never synced.
 */
export async function onConnected(
  deps: SchedulerDeps,
  target: ConnectionRef & { cron?: string },
): Promise<{ scheduleId: string; sync: StartedSync; full: boolean }> {
  const existing = await describeSchedule(deps.client, target)
  const schedule = await ensureSchedule(deps, target)
  if (existing?.paused && existing.note === DISCONNECTED_NOTE) await resumeSchedule(deps, target)
  const row = await withTenant(deps.handle.db, target.tenantId, (tx) =>
    findConnection(tx, target.tenantId, target.connectorType),
  )
  const full = !row?.lastSyncAt && !row?.cursor
  const sync = await startSync(deps, { ...target, full })
  return { scheduleId: schedule.scheduleId, sync, full }
}

/**
 * What the disconnect flow calls: pauses the connection's schedule (keeping its cron for a
 * reconnect) so it stops launching syncs that cannot authenticate. A running sync is not stopped.
 */
export async function onDisconnected(deps: SchedulerDeps, target: ConnectionRef): Promise<boolean> {
  if (!(await describeSchedule(deps.client, target))) return false
  await pauseSchedule(deps, target, DISCONNECTED_NOTE)
  return true
}

/**
 * Makes sure every live connection (of every tenant, for connector types this agent runs) has
 * its schedule. Called when the worker starts; schedules that exist are left as they are.
 */
export async function ensureAllSchedules(
  deps: Omit<SchedulerDeps, 'userId'> & { registry: ConnectorRegistry; log: Logger },
): Promise<{ created: number; updated: number; unchanged: number; failed: number }> {
  const counts = { created: 0, updated: 0, unchanged: 0, failed: 0 }
  for (const tenant of await listTenants(deps.handle.db)) {
    const rows = await withTenant(deps.handle.db, tenant.id, (tx) =>
      tx
        .select({ type: connectors.type })
        .from(connectors)
        .where(and(eq(connectors.tenantId, tenant.id), ne(connectors.status, 'disconnected'))),
    )
    for (const { type } of rows) {
      if (!deps.registry.has(type)) continue
      try {
        const result = await ensureSchedule(
          { ...deps, userId: 'system' },
          { tenantId: tenant.id, connectorType: type },
        )
        counts[result.outcome] += 1
      } catch (err) {
        counts.failed += 1
        deps.log.warn(
          { tenantId: tenant.id, connector: type, error: describeError(err) },
          'could not ensure the sync schedule',
        )
      }
    }
  }
  return counts
}

export interface ReconcileCounts {
  created: number
  updated: number
  unchanged: number
  /** Schedules of disconnected connections paused by this pass. */
  paused: number
  /** Schedules paused by a disconnect whose connection is live again, resumed by this pass. */
  resumed: number
  /** Full syncs started for connections that never synced. */
  fullSyncs: number
  /** Writeback workflows woken (or started) for updates queued while none ran. */
  writebacks: number
  failed: number
}

/**
 * One pass of the worker's reconcile loop, over every connection (of every tenant, for
 * connector types this agent runs): a live connection gets its schedule (resumed if a
 * disconnect paused it) and, if it has never synced (no last sync, no cursor, no sync run), a
 * full sync now, and queued writeback updates that are due wake its writeback workflow; a
 * disconnected connection's running schedule is paused. A connection that
 * fails is logged and counted, and the pass goes on. Idempotent: a pass with nothing to do
 * changes nothing and audits nothing.
 */
export async function reconcileSchedules(
  deps: Omit<SchedulerDeps, 'userId'> & { registry: ConnectorRegistry; log: Logger },
): Promise<ReconcileCounts> {
  const counts: ReconcileCounts = {
    created: 0,
    updated: 0,
    unchanged: 0,
    paused: 0,
    resumed: 0,
    fullSyncs: 0,
    writebacks: 0,
    failed: 0,
  }
  const system: SchedulerDeps = { ...deps, userId: 'system' }
  for (const tenant of await listTenants(deps.handle.db)) {
    const rows = await withTenant(deps.handle.db, tenant.id, (tx) =>
      tx
        .select({
          type: connectors.type,
          status: connectors.status,
          lastSyncAt: connectors.lastSyncAt,
          cursor: connectors.cursor,
          hasRun: sql<boolean>`exists (select 1 from ${syncRuns} where ${syncRuns.connectorId} = ${connectors.id})`,
        })
        .from(connectors)
        .where(eq(connectors.tenantId, tenant.id)),
    )
    for (const row of rows) {
      if (!deps.registry.has(row.type)) continue
      const target = { tenantId: tenant.id, connectorType: row.type }
      try {
        const view = await describeSchedule(deps.client, target)
        if (row.status === 'disconnected') {
          if (view && !view.paused) {
            await pauseSchedule(system, target, DISCONNECTED_NOTE)
            counts.paused += 1
          }
          continue
        }
        const ensured = await ensureSchedule(system, target)
        counts[ensured.outcome] += 1
        if (view?.paused && view.note === DISCONNECTED_NOTE) {
          await resumeSchedule(system, target)
          counts.resumed += 1
        }
        // A first sync that failed is not retried every pass: the schedule takes it from there.
        if (!row.lastSyncAt && !row.cursor && !row.hasRun) {
          const started = await startSync(system, { ...target, full: true })
          if (started.outcome === 'started') counts.fullSyncs += 1
        }
        // Updates queued without a signal (`writeback enqueue` while Temporal was away): the
        // writeback workflow is started, or woken if it idles.
        const connector = deps.registry.get(row.type)
        const due = await withTenant(deps.handle.db, tenant.id, (tx) =>
          hasDueWriteback(tx, tenant.id, connector),
        )
        if (due) {
          await wakeWriteback(deps, target)
          counts.writebacks += 1
        }
      } catch (err) {
        counts.failed += 1
        deps.log.warn(
          { tenantId: tenant.id, connector: row.type, error: describeError(err) },
          'could not reconcile the sync schedule',
        )
      }
    }
  }
  return counts
}

// --- implementation ---

type LaunchAction = ScheduleOptionsStartWorkflowAction<typeof launchSync>

function launchAction(taskQueue: string, target: ConnectionRef, cron: string): LaunchAction {
  const input: LaunchSyncInput = {
    tenantId: target.tenantId,
    connectorType: target.connectorType,
    triggeredBy: 'schedule',
  }
  // The cron is kept in the action's memo: Temporal compiles cron strings into calendars.
  return {
    type: 'startWorkflow',
    workflowType: launchSync,
    taskQueue,
    args: [input],
    memo: { cron },
  }
}

function isUpToDate(
  existing: ScheduleDescription,
  action: LaunchAction,
  target: { cron?: string; paused?: boolean },
): boolean {
  return (
    existing.action.workflowType === 'launchSync' &&
    existing.action.taskQueue === action.taskQueue &&
    (target.cron === undefined || cronOf(existing) === target.cron) &&
    (target.paused === undefined || existing.state.paused === target.paused) &&
    existing.policies.overlap === ScheduleOverlapPolicy.SKIP &&
    existing.policies.catchupWindow === CATCHUP_WINDOW_MS
  )
}

function cronOf(description: ScheduleDescription): string | null {
  const cron = description.action.memo?.cron
  return typeof cron === 'string' ? cron : null
}

function toView(scheduleId: string, ref: ConnectionRef, d: ScheduleDescription): ScheduleView {
  const last = d.info.recentActions.at(-1)
  return {
    scheduleId,
    ...ref,
    cron: cronOf(d),
    paused: d.state.paused,
    note: d.state.note ?? null,
    nextRunAt: d.info.nextActionTimes[0] ?? null,
    lastRunAt: last?.takenAt ?? null,
    running: d.info.runningActions.length > 0,
  }
}

async function describeOrUndefined(handle: {
  describe(): Promise<ScheduleDescription>
}): Promise<ScheduleDescription | undefined> {
  try {
    return await handle.describe()
  } catch (err) {
    if (err instanceof ScheduleNotFoundError) return undefined
    throw err
  }
}

async function existingSchedule(client: Client, target: ConnectionRef) {
  const handle = client.schedule.getHandle(syncScheduleId(target.tenantId, target.connectorType))
  if (!(await describeOrUndefined(handle))) {
    throw new AppError(
      'config_missing',
      `${target.connectorType} of tenant "${target.tenantId}" has no sync schedule. Create it with: gtm-agent schedule ${target.connectorType} --tenant ${target.tenantId}`,
    )
  }
  return handle
}

/** The connection's row id; throws when the tenant has no live connection of this type. */
async function requireConnection(handle: DbHandle, target: ConnectionRef): Promise<string> {
  const row = await withTenant(handle.db, target.tenantId, (tx) =>
    findConnection(tx, target.tenantId, target.connectorType),
  )
  if (!row || row.status === 'disconnected') {
    throw new AppError(
      'connector_not_connected',
      `${target.connectorType} is not connected for tenant "${target.tenantId}". Connect it with: gtm-agent connect ${target.connectorType} --tenant ${target.tenantId} --config <file.json>`,
    )
  }
  return row.id
}

/** Runs a Temporal mutation inside the transaction that records its audit row. */
async function audited(
  deps: SchedulerDeps,
  target: ConnectionRef,
  entry: {
    action: string
    scheduleId: string
    connectorId?: string
    before?: unknown
    after?: unknown
  },
  mutate: () => Promise<void>,
): Promise<void> {
  await withTenant(deps.handle.db, target.tenantId, async (tx) => {
    await mutate()
    await recordAudit(tx, {
      tenantId: target.tenantId,
      userId: deps.userId,
      action: entry.action,
      resource: 'schedule',
      resourceId: entry.scheduleId,
      ...(entry.before === undefined ? {} : { before: entry.before }),
      ...(entry.after === undefined ? {} : { after: entry.after }),
      metadata: {
        connectorType: target.connectorType,
        ...(entry.connectorId ? { connectorId: entry.connectorId } : {}),
      },
    })
  })
}

/** One definition of a valid schedule, the app's (shared/cron.ts, what Temporal accepts). */
function checkCron(cron: string): void {
  const check = checkCronExpression(cron)
  if (check.ok) return
  throw new ConfigError(
    'config_invalid',
    `"${cron}" is not a cron expression the scheduler accepts: ${check.error}. For example "${DEFAULT_SYNC_CRON}" syncs every 15 minutes.`,
  )
}

function invalidCron(err: unknown, cron: string): unknown {
  const message = describeError(err)
  if (!/cron|calendar|interval|invalid/i.test(message)) return err
  return new ConfigError('config_invalid', `Temporal rejected the schedule "${cron}": ${message}`, {
    cause: err,
  })
}
