/**
 * Names the agent, the app and the CLI share about Temporal: the task queue, and the ids of the
 * workflows and schedules of one connection. Ids are derived from tenant + connector type, so
 * Temporal itself keeps two syncs (or two writebacks) of one connection from running at once.
 */

/** The task queue every agent worker polls (TEMPORAL_TASK_QUEUE overrides it). */
export const TASK_QUEUE = 'gtm-connect'

/** Default sync schedule of a connection: every 15 minutes. */
export const DEFAULT_SYNC_CRON = '*/15 * * * *'

/**
 * How writeback retries an update that failed transiently: this many attempts in all, the
 * first retry after this long, doubling each time (the workflow and `writeback run` alike).
 */
export const WRITEBACK_RETRY = { maxAttempts: 5, retryBaseMs: 30_000 } as const

/** The one sync workflow of a connection. */
export function syncWorkflowId(tenantId: string, connectorType: string): string {
  return `sync:${tenantId}:${connectorType}`
}

/** The one writeback workflow of a connection. */
export function writebackWorkflowId(tenantId: string, connectorType: string): string {
  return `writeback:${tenantId}:${connectorType}`
}

/** The sync schedule of a connection. */
export function syncScheduleId(tenantId: string, connectorType: string): string {
  return `schedule:${tenantId}:${connectorType}`
}

/** The tenant and connector type of a schedule id, or undefined for a schedule that is not ours. */
export function parseSyncScheduleId(
  scheduleId: string,
): { tenantId: string; connectorType: string } | undefined {
  const match = /^schedule:([^:]+):([^:]+)$/.exec(scheduleId)
  return match ? { tenantId: match[1]!, connectorType: match[2]! } : undefined
}

/** What a sync reports while it runs. */
export type SyncWorkflowPhase =
  'authenticating' | 'syncing' | 'writing' | 'finalizing' | 'complete' | 'failed'
