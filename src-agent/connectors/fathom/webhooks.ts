/**
 * Fathom's "new meeting content ready" webhook (https://developers.fathom.ai/webhooks): one
 * meeting object per POST, signed the Standard Webhooks way (webhook-id, webhook-timestamp,
 * webhook-signature `v1,<base64>` over `id.timestamp.body` with the whsec_ secret). The
 * webhook-id is stable across Fathom's retries, so a redelivery is stored once.
 */
import type { WebhookCapability } from '../interface.js'
import { checkStandardWebhookSignature } from '../webhook-signing.js'
import { meetingRecord } from './meetings.js'

export const fathomWebhooks: WebhookCapability = {
  // A meeting with its whole transcript can be large.
  maxBodyBytes: 8 * 1024 * 1024,
  signingKeyConfigKey: 'webhookSecret',

  verify(request, credentials) {
    return checkStandardWebhookSignature({
      secret: credentials.webhookSecret,
      id: request.headers['webhook-id'],
      timestamp: request.headers['webhook-timestamp'],
      signature: request.headers['webhook-signature'],
      rawBody: request.rawBody,
      receivedAt: request.receivedAt,
    })
  },

  parse(rawBody, headers) {
    let json: unknown
    try {
      json = JSON.parse(rawBody.toString('utf8'))
    } catch {
      return { ok: false, reason: 'the body is not JSON' }
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      return { ok: false, reason: 'the body is not a meeting object' }
    }
    const meeting = json as Record<string, unknown>
    const eventId = headers['webhook-id']
    if (!eventId) return { ok: false, reason: 'the webhook-id header is missing' }
    const created =
      typeof meeting['created_at'] === 'string' ? Date.parse(meeting['created_at']) : NaN
    return {
      ok: true,
      events: [
        {
          eventId,
          type: 'newMeeting',
          ...(Number.isNaN(created) ? {} : { occurredAt: new Date(created) }),
          stream: 'meetings',
          payload: meeting,
          records: [meetingRecord(meeting)],
        },
      ],
    }
  },
}
