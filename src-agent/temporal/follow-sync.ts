/**
 * An on-demand sync through Temporal: start the connection's sync workflow (or join the one
 * already running), report its progress while it runs, and return its outcome.
 */
import type { Env } from '../config.js'
import type { Logger } from '../logging/logger.js'
import { requireWorker, withScheduler } from './client.js'
import { awaitSync, startSync, type SyncOutcomeView } from './scheduler.js'
import { syncProgressQuery, type SyncProgressView } from './workflows.js'

export interface FollowSyncHooks {
  /** A sync of the connection was already running: it is followed instead of a new one. */
  onFollowing?: () => void
  /** The workflow's progress, about twice a second and once more at the end. */
  onProgress?: (progress: SyncProgressView) => void
}

/**
 * Starts (or follows) the connection's sync workflow and waits for its outcome. Throws when no
 * worker serves the task queue, since the workflow would wait forever. The request is audited as
 * `caller.userId`.
 */
export async function followSync(
  caller: { env: Env; log: Logger; userId: string },
  input: {
    tenantId: string
    connectorType: string
    stream?: string
    partition?: string
    full?: boolean
    pageSize?: number
  },
  hooks: FollowSyncHooks = {},
): Promise<SyncOutcomeView> {
  return withScheduler(caller, async (deps, temporal) => {
    await requireWorker(temporal)
    const started = await startSync(deps, {
      tenantId: input.tenantId,
      connectorType: input.connectorType,
      ...(input.stream !== undefined ? { stream: input.stream } : {}),
      ...(input.partition !== undefined ? { partition: input.partition } : {}),
      ...(input.full ? { full: true } : {}),
      ...(input.pageSize ? { tuning: { pageSize: input.pageSize } } : {}),
    })
    if (started.outcome === 'already_running') hooks.onFollowing?.()
    const stopPolling = pollProgress(started.handle, hooks.onProgress)
    try {
      return await awaitSync(started.handle)
    } finally {
      await stopPolling()
    }
  })
}

// --- implementation ---

/** Polls the syncProgress query into `report` until stopped. */
function pollProgress(
  handle: { query: (q: typeof syncProgressQuery) => Promise<SyncProgressView> },
  report: ((progress: SyncProgressView) => void) | undefined,
): () => Promise<void> {
  if (!report) return () => Promise.resolve()
  let stopped = false
  const loop = (async () => {
    while (!stopped) {
      try {
        report(await handle.query(syncProgressQuery))
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
    const last = await handle.query(syncProgressQuery).catch(() => undefined)
    if (last) report(last)
  }
}
