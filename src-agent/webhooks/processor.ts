/**
 * Works the webhook inbox off in the background: a tenant's events right after they were stored,
 * every tenant's at start (events a crash left pending) and again every retry interval (events
 * whose processing failed: they are not retried sooner, so a poison event costs one attempt per
 * interval). One event at a time; several agents may share the inbox.
 */
import type { Db } from '../../db/client.js'
import { describeError } from '../../shared/errors.js'
import type { ConnectorRegistry } from '../connectors/registry.js'
import type { Logger } from '../logging/logger.js'
import { listTenants } from '../pipeline/tenants.js'
import { webhookEventsTotal } from '../telemetry/metrics.js'
import { inboxClock, pendingEvents, processEvent, type InboxPosition } from './inbox.js'

/** How often failed events are tried again unless the caller says otherwise. */
export const DEFAULT_RETRY_INTERVAL_MS = 60_000

export interface WebhookProcessorDeps {
  db: Db
  registry: ConnectorRegistry
  log: Logger
}

export interface WebhookProcessor {
  /** Processes the tenant's pending events soon (it just stored some). */
  wake(tenantId: string): void
  /** Resolves when nothing is queued and no pass is running. */
  idle(): Promise<void>
  /** Stops after the event in hand; events left pending are picked up by the next start. */
  close(): Promise<void>
}

/** Starts the processor with a pass over every tenant's pending events. */
export function startWebhookProcessor(
  deps: WebhookProcessorDeps,
  options: { retryIntervalMs?: number } = {},
): WebhookProcessor {
  const log = deps.log.child({ component: 'webhooks' })
  /** Tenants to work on: `untried` after new events arrived, `all` in a sweep (retries too). */
  const queued = new Map<string, 'untried' | 'all'>()
  let sweepAll = true
  let closed = false
  let running: Promise<void> | undefined

  const kick = (): void => {
    if (closed || running) return
    running = drain().finally(() => {
      running = undefined
      // Work queued while the last tenant's pass was finishing.
      if (queued.size > 0 || sweepAll) kick()
    })
  }

  const drain = async (): Promise<void> => {
    while (!closed) {
      if (sweepAll) {
        sweepAll = false
        try {
          for (const tenant of await listTenants(deps.db)) queued.set(tenant.id, 'all')
        } catch (err) {
          log.warn({ error: describeError(err) }, 'could not list the tenants with webhook events')
        }
      }
      const next = queued.entries().next()
      if (next.done) return
      const [tenantId, scope] = next.value
      queued.delete(tenantId)
      await processTenant(tenantId, scope)
    }
  }

  const processTenant = async (tenantId: string, scope: 'untried' | 'all'): Promise<void> => {
    try {
      const until = await inboxClock(deps.db)
      let after: InboxPosition | undefined
      while (!closed) {
        const batch = await pendingEvents(deps.db, tenantId, {
          until,
          untried: scope === 'untried',
          ...(after ? { after } : {}),
        })
        if (batch.length === 0) return
        for (const event of batch) {
          if (closed) return
          after = { id: event.id, receivedAt: event.receivedAt }
          const result = await processEvent(deps, tenantId, event.id)
          if (result.outcome !== 'skipped') {
            webhookEventsTotal.inc({
              tenant: tenantId,
              connector: event.source,
              outcome: result.outcome === 'retry' ? 'retrying' : result.outcome,
            })
          }
          const fields = { tenantId, inboxId: event.id }
          if (result.outcome === 'processed') {
            log.info({ ...fields, ...result.counts }, 'webhook event processed')
          } else if (result.outcome !== 'skipped') {
            log.warn(
              { ...fields, attempts: result.attempts, error: result.error },
              result.outcome === 'failed'
                ? 'webhook event failed for good'
                : 'webhook event failed; it is tried again later',
            )
          }
        }
      }
    } catch (err) {
      // The database is away, say: the tenant's events wait for the next pass.
      log.warn({ tenantId, error: describeError(err) }, 'could not process webhook events')
    }
  }

  const timer = setInterval(() => {
    sweepAll = true
    kick()
  }, options.retryIntervalMs ?? DEFAULT_RETRY_INTERVAL_MS)
  timer.unref()
  kick()

  return {
    wake(tenantId) {
      if (!queued.has(tenantId)) queued.set(tenantId, 'untried')
      kick()
    },
    async idle() {
      while (running) await running
    },
    async close() {
      closed = true
      clearInterval(timer)
      await running
    },
  }
}
