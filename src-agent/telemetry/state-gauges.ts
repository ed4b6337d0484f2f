/**
 * Gauges read at scrape time from what the database and Temporal hold (lag per connection,
 * schedule intervals, queued writebacks, webhook backlog): every worker reports the same values,
 * from one read per scrape shared by all of them.
 */
import { Gauge, type Registry } from 'prom-client'

/** What one scrape reads; `databaseUp` false when the read failed (then no connection is listed). */
export interface StateSnapshot {
  databaseUp: boolean
  workerRunning: boolean
  connections: Array<{
    tenant: string
    connector: string
    status: string
    needsReauth: boolean
    lagSeconds: number | null
    scheduleIntervalSeconds: number | null
    schedulePaused: boolean | null
    writebacksPending: number
    writebacksFailed: number
    writebacksOldestDueSeconds: number | null
    webhooksPending: number
    webhooksFailed: number
    webhooksOldestPendingSeconds: number | null
  }>
}

/**
 * Registers the gauges on `registry`; each scrape calls `read` once (concurrent gauges share it).
 * Called again for the same registry (a second worker in one process), it only swaps `read`.
 */
export function registerStateGauges(registry: Registry, read: () => Promise<StateSnapshot>): void {
  const existing = readers.get(registry)
  if (existing) {
    existing.read = read
    return
  }
  const source = { read }
  readers.set(registry, source)
  let current: Promise<StateSnapshot> | undefined
  const snapshot = (): Promise<StateSnapshot> => {
    if (!current) {
      // A scrape starts every gauge's collect at once: they share the read in flight, and the
      // next scrape reads afresh.
      current = source.read().finally(() => {
        current = undefined
      })
    }
    return current
  }
  const gauge = (
    name: string,
    help: string,
    labelNames: string[],
    fill: (g: Gauge, s: StateSnapshot) => void,
  ): void => {
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      async collect() {
        const s = await snapshot()
        this.reset()
        fill(this, s)
      },
    })
  }
  const perConnection = ['tenant', 'connector']

  gauge(
    'gtm_database_up',
    'Whether the last scrape could read the database (1) or not (0).',
    [],
    (g, s) => g.set(s.databaseUp ? 1 : 0),
  )
  gauge(
    'gtm_worker_running',
    "Whether this agent's Temporal worker is running and polling its task queue (1) or not (0).",
    [],
    (g, s) => g.set(s.workerRunning ? 1 : 0),
  )
  gauge(
    'gtm_connection_lag_seconds',
    'Seconds since the connection last synced successfully (since it was connected, if never). Not reported for disconnected connections.',
    perConnection,
    (g, s) => {
      for (const c of s.connections) {
        if (c.lagSeconds !== null) g.set(labelsOf(c), c.lagSeconds)
      }
    },
  )
  gauge(
    'gtm_connection_status',
    'The connection status: 1 for the current one (connected, syncing, error, pending_auth, disconnected).',
    [...perConnection, 'status'],
    (g, s) => {
      for (const c of s.connections) g.set({ ...labelsOf(c), status: c.status }, 1)
    },
  )
  gauge(
    'gtm_connection_needs_reauth',
    'Whether the source refused the stored credentials (1): an admin must reconnect it.',
    perConnection,
    (g, s) => {
      for (const c of s.connections) g.set(labelsOf(c), c.needsReauth ? 1 : 0)
    },
  )
  gauge(
    'gtm_connection_schedule_interval_seconds',
    "Seconds between two runs of the connection's sync schedule (from its cron).",
    perConnection,
    (g, s) => {
      for (const c of s.connections) {
        if (c.scheduleIntervalSeconds !== null) g.set(labelsOf(c), c.scheduleIntervalSeconds)
      }
    },
  )
  gauge(
    'gtm_connection_schedule_paused',
    "Whether the connection's sync schedule is paused (1).",
    perConnection,
    (g, s) => {
      for (const c of s.connections) {
        if (c.schedulePaused !== null) g.set(labelsOf(c), c.schedulePaused ? 1 : 0)
      }
    },
  )
  gauge(
    'gtm_writeback_queue_items',
    'Writeback items in the queue, by state: pending (to send) or failed (given up on).',
    [...perConnection, 'state'],
    (g, s) => {
      for (const c of s.connections) {
        g.set({ ...labelsOf(c), state: 'pending' }, c.writebacksPending)
        g.set({ ...labelsOf(c), state: 'failed' }, c.writebacksFailed)
      }
    },
  )
  gauge(
    'gtm_writeback_queue_oldest_due_seconds',
    'Seconds the longest-waiting due writeback item has been due (0 when none is).',
    perConnection,
    (g, s) => {
      for (const c of s.connections) g.set(labelsOf(c), c.writebacksOldestDueSeconds ?? 0)
    },
  )
  gauge(
    'gtm_webhook_inbox_events',
    'Webhook events in the inbox, by state: pending (to process) or failed (given up on).',
    [...perConnection, 'state'],
    (g, s) => {
      for (const c of s.connections) {
        g.set({ ...labelsOf(c), state: 'pending' }, c.webhooksPending)
        g.set({ ...labelsOf(c), state: 'failed' }, c.webhooksFailed)
      }
    },
  )
  gauge(
    'gtm_webhook_inbox_oldest_pending_seconds',
    'Seconds the oldest pending webhook event has waited (0 when none is pending).',
    perConnection,
    (g, s) => {
      for (const c of s.connections) g.set(labelsOf(c), c.webhooksOldestPendingSeconds ?? 0)
    },
  )
}

const readers = new WeakMap<Registry, { read: () => Promise<StateSnapshot> }>()

function labelsOf(c: { tenant: string; connector: string }): { tenant: string; connector: string } {
  return { tenant: c.tenant, connector: c.connector }
}
