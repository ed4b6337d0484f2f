import { z } from 'zod'
import type { WebhookCapability } from '../interface.js'
import { checkHmacSignature } from '../webhook-signing.js'

/**
 * Events the vendor pushes. Link the vendor's webhook docs here: how it signs (header names,
 * what is signed, the timestamp tolerance), its event id, and its retry policy. The signing key
 * is a secret config key (`webhookSigningKey` in schemas.ts), so it is stored encrypted.
 */
const contactEventSchema = z.object({
  id: z.string().min(1),
  type: z.string().min(1),
  created_at: z.number().int(),
  contact: z.looseObject({ id: z.string() }),
})

export const exampleWebhooks: WebhookCapability = {
  maxBodyBytes: 256 * 1024,
  signingKeyConfigKey: 'webhookSigningKey',

  // The HMAC covers the exact bytes received, so verify before parsing anything.
  verify(request, credentials) {
    return checkHmacSignature({
      key: credentials.webhookSigningKey,
      timestamp: request.headers['x-example-timestamp'],
      signature: request.headers['x-example-signature'],
      signed: (timestamp) => [`${timestamp}.`, request.rawBody],
      receivedAt: request.receivedAt,
    })
  },

  // Never throws: a body we cannot read is answered 400 with the reason.
  parse(rawBody) {
    let json: unknown
    try {
      json = JSON.parse(rawBody.toString('utf8'))
    } catch {
      return { ok: false, reason: 'the body is not JSON' }
    }
    const event = contactEventSchema.safeParse(json)
    if (!event.success) return { ok: false, reason: 'the body is not a contact event' }
    return {
      ok: true,
      events: [
        {
          // The vendor's id: a redelivery carries it again and is stored once.
          eventId: event.data.id,
          type: event.data.type,
          occurredAt: new Date(event.data.created_at * 1000),
          payload: json as Record<string, unknown>,
          // The same shape sync() returns, so the same mappings apply.
          records: [{ entityType: 'person', data: event.data.contact }],
        },
      ],
    }
  },
}
