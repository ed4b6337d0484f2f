/**
 * Customer.io Reporting Webhooks (https://docs.customer.io/api/webhooks/): one event per POST,
 * signed with `X-CIO-Signature` = hex HMAC-SHA256 of `v0:<X-CIO-Timestamp>:<raw body>` with the
 * signing key. Redeliveries carry the same `event_id` and are stored once; the activity's id is
 * the delivery's and the state's, the same as a backfill makes.
 */
import type { WebhookCapability } from '../interface.js'
import { checkHmacSignature } from '../webhook-signing.js'
import { eventActivities, reportingEventSchema } from './events.js'

export const customerioWebhooks: WebhookCapability = {
  maxBodyBytes: 256 * 1024,
  signingKeyConfigKey: 'webhookSigningKey',

  verify(request, credentials) {
    return checkHmacSignature({
      key: credentials.webhookSigningKey,
      timestamp: request.headers['x-cio-timestamp'],
      signature: request.headers['x-cio-signature'],
      signed: (timestamp) => [`v0:${timestamp}:`, request.rawBody],
      receivedAt: request.receivedAt,
    })
  },

  parse(rawBody) {
    let json: unknown
    try {
      json = JSON.parse(rawBody.toString('utf8'))
    } catch {
      return { ok: false, reason: 'the body is not JSON' }
    }
    const event = reportingEventSchema.safeParse(json)
    if (!event.success) {
      const issue = event.error.issues[0]
      return {
        ok: false,
        reason: `${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}`,
      }
    }
    return {
      ok: true,
      events: [
        {
          eventId: event.data.event_id,
          type: `${event.data.object_type}_${event.data.metric}`,
          occurredAt: new Date(event.data.timestamp * 1000),
          stream: 'email_activity',
          payload: json as Record<string, unknown>,
          records: eventActivities(event.data),
        },
      ],
    }
  },
}
