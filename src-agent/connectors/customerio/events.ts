/**
 * Email engagement as activities: one per delivery per state it reached (`email_sent`,
 * `email_delivered`, `email_open`, `email_click` …), with the same external id
 * (`<delivery id>:<state>`) whether it came from a webhook or from the App API, so the two make
 * one activity. Other channels (push, SMS, in-app) never become `email_*`.
 */
import { z } from 'zod'
import type { SourceRecord } from '../../../shared/schemas.js'

/** Customer.io's metric names as the activity's verb: `opened` → `open`, `clicked` → `click`. */
const VERBS: Record<string, string> = {
  opened: 'open',
  clicked: 'click',
  human_opened: 'open',
  human_clicked: 'click',
}

function verbOf(metric: string): string {
  return VERBS[metric] ?? metric
}

function iso(unixSeconds: unknown): unknown {
  // A value that is not a number is passed on as it is: the quality step names it.
  return typeof unixSeconds === 'number' ? new Date(unixSeconds * 1000).toISOString() : unixSeconds
}

function personOf(
  customerId: unknown,
  identifiers: unknown,
  recipient: unknown,
): string | undefined {
  const ids = (
    typeof identifiers === 'object' && identifiers !== null ? identifiers : {}
  ) as Record<string, unknown>
  for (const candidate of [customerId, ids['id'], ids['email'], recipient]) {
    if (typeof candidate === 'string' && candidate.trim() !== '') return candidate.trim()
    if (typeof candidate === 'number') return String(candidate)
  }
  return undefined
}

/** One email activity's source record. */
function emailActivity(fields: {
  deliveryId: string
  metric: string
  at: unknown
  person: string | undefined
  raw: Record<string, unknown>
  campaignId?: unknown
  actionId?: unknown
  broadcastId?: unknown
  subject?: unknown
  link?: unknown
}): SourceRecord {
  const verb = verbOf(fields.metric)
  return {
    entityType: 'activity',
    data: {
      activityId: `${fields.deliveryId}:${verb}`,
      kind: `email_${verb}`,
      channel: 'email',
      occurredAt: iso(fields.at),
      ...(fields.person ? { personId: fields.person } : {}),
      deliveryId: fields.deliveryId,
      campaignId: fields.campaignId ?? null,
      actionId: fields.actionId ?? null,
      broadcastId: fields.broadcastId ?? null,
      subject: fields.subject ?? null,
      link: fields.link ?? null,
      source: fields.raw,
    },
    ...(typeof fields.at === 'number' ? { modifiedAt: new Date(fields.at * 1000) } : {}),
  }
}

/** The activities a delivery from `GET /v1/messages` has reached so far: one per metric. */
export function deliveryActivities(message: Record<string, unknown>): SourceRecord[] {
  if (message['type'] !== undefined && message['type'] !== 'email') return []
  const deliveryId = typeof message['id'] === 'string' ? message['id'] : undefined
  const metrics = message['metrics']
  if (!deliveryId || typeof metrics !== 'object' || metrics === null) {
    // Kept for the quality step to quarantine with the field at fault.
    return [
      { entityType: 'activity', data: { kind: 'email_sent', channel: 'email', source: message } },
    ]
  }
  const person = personOf(
    message['customer_id'],
    message['customer_identifiers'],
    message['recipient'],
  )
  return Object.entries(metrics as Record<string, unknown>).map(([metric, at]) =>
    emailActivity({
      deliveryId,
      metric,
      at,
      person,
      raw: { id: deliveryId, metric },
      campaignId: message['campaign_id'],
      actionId: message['action_id'],
      broadcastId: message['broadcast_id'],
      subject: message['subject'],
    }),
  )
}

/** A Reporting Webhooks event (https://docs.customer.io/api/webhooks/). */
export const reportingEventSchema = z.object({
  event_id: z.string().min(1),
  object_type: z.string().min(1),
  metric: z.string().min(1),
  timestamp: z.number(),
  data: z.looseObject({}),
})
export type ReportingEvent = z.infer<typeof reportingEventSchema>

/** The records of one reporting event: an email activity, or none for other channels. */
export function eventActivities(event: ReportingEvent): SourceRecord[] {
  if (event.object_type !== 'email') return []
  const data = event.data
  const deliveryId = typeof data['delivery_id'] === 'string' ? data['delivery_id'] : undefined
  if (!deliveryId) return []
  return [
    emailActivity({
      deliveryId,
      metric: event.metric,
      at: event.timestamp,
      person: personOf(data['customer_id'], data['identifiers'], data['recipient']),
      raw: { event_id: event.event_id, metric: event.metric },
      campaignId: data['campaign_id'],
      actionId: data['action_id'],
      broadcastId: data['broadcast_id'],
      subject: data['subject'],
      link: data['href'] ?? data['link'],
    }),
  ]
}
