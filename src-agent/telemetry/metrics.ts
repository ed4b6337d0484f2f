/**
 * The agent's in-process metrics (Prometheus, `gtm_*`), counted where the work happens: sync runs
 * and their records, vendor calls and their retries, API quota, writeback items, webhook events,
 * and the process itself. One registry per process; with several workers, each exposes its own.
 *
 * Labels carry ids only: the tenant id, the connector type, the stream, an outcome or a reason
 * key. Never a secret, a URL or a value read from a vendor record.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/** The registry `/metrics` serves. */
export const metricsRegistry = new Registry()

collectDefaultMetrics({ register: metricsRegistry, prefix: 'gtm_' })

const tenantConnector = ['tenant', 'connector'] as const

export const syncRunsTotal = new Counter({
  name: 'gtm_sync_runs_total',
  help: 'Sync runs (one per stream) that ended, by outcome: succeeded, failed, paused (API quota) or cancelled.',
  labelNames: [...tenantConnector, 'stream', 'outcome'],
  registers: [metricsRegistry],
})

export const syncRecordsTotal = new Counter({
  name: 'gtm_sync_records_total',
  help: 'Records committed by syncs, by change: created, updated, deleted, quarantined.',
  labelNames: [...tenantConnector, 'stream', 'change'],
  registers: [metricsRegistry],
})

export const syncRunDuration = new Histogram({
  name: 'gtm_sync_run_duration_seconds',
  help: 'Wall time of a sync run, from its start to its end (all its chunks).',
  labelNames: ['connector', 'stream', 'outcome'],
  buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200],
  registers: [metricsRegistry],
})

export const vendorRequestsTotal = new Counter({
  name: 'gtm_vendor_requests_total',
  help: 'Attempts of vendor calls, by outcome: ok or error (an error may be retried).',
  labelNames: [...tenantConnector, 'outcome'],
  registers: [metricsRegistry],
})

export const vendorRetriesTotal = new Counter({
  name: 'gtm_vendor_retries_total',
  help: 'Vendor calls tried again, by reason (http_503, idle_timeout, session_expired, ...).',
  labelNames: [...tenantConnector, 'reason'],
  registers: [metricsRegistry],
})

export const apiQuotaUsed = new Gauge({
  name: 'gtm_vendor_api_quota_used',
  help: "API calls used of the vendor's daily allowance, as its latest answer said (Salesforce).",
  labelNames: [...tenantConnector],
  registers: [metricsRegistry],
})

export const apiQuotaLimit = new Gauge({
  name: 'gtm_vendor_api_quota_limit',
  help: "The vendor's daily API allowance, as its latest answer said (Salesforce).",
  labelNames: [...tenantConnector],
  registers: [metricsRegistry],
})

export const writebackItemsTotal = new Counter({
  name: 'gtm_writeback_items_total',
  help: 'Writeback items sent to a source, by outcome: sent, failed (given up), retrying.',
  labelNames: [...tenantConnector, 'outcome'],
  registers: [metricsRegistry],
})

export const webhookEventsTotal = new Counter({
  name: 'gtm_webhook_events_total',
  help: 'Webhook events by outcome: received (stored), duplicate, refused (request answered 4xx), processed, retrying, failed.',
  labelNames: [...tenantConnector, 'outcome'],
  registers: [metricsRegistry],
})

/**
 * Who a vendor call is made for. The pipeline passes them to the connector with its options
 * (CredentialOptions.labels), and the connector with each call (RetryOptions.labels). They are
 * passed along, not kept in an AsyncLocalStorage: that turns Node's promise hooks on for the
 * whole process, and every promise then costs more (a sync with nothing changed took over a
 * third more CPU).
 */
export interface CallLabels {
  tenant: string
  connector: string
}

/**
 * The labels a vendor call is counted under: the caller's; without them (a call not made for a
 * tenant's connection), the vendor's display name made into a key (`Salesforce` →
 * `salesforce`) and an empty tenant.
 */
export function callLabelsOf(vendor: string, labels: CallLabels | undefined): CallLabels {
  return labels ?? { tenant: '', connector: labelKey(vendor) }
}

/** A free-form key (a reason, a vendor name) made safe and short for a label value. */
export function labelKey(text: string): string {
  return (
    text
      .toLowerCase()
      .replace(/[^a-z0-9_]+/g, '_')
      .replace(/^_+|_+$/g, '')
      .slice(0, 64) || 'unknown'
  )
}

/** Records the vendor's API allowance (used of limit) for the call in progress. */
export function recordApiQuota(
  vendor: string,
  usage: { used: number; max: number },
  callLabels: CallLabels | undefined,
): void {
  const labels = callLabelsOf(vendor, callLabels)
  apiQuotaUsed.set(labels, usage.used)
  apiQuotaLimit.set(labels, usage.max)
}
