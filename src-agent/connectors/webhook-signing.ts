/** Checks shared by connectors whose sources sign webhooks with an HMAC and a timestamp. */
import { createHmac, timingSafeEqual } from 'node:crypto'
import type { WebhookVerdict } from './interface.js'

/** How far a signed timestamp may be from our clock, unless the source documents another. */
export const DEFAULT_TIMESTAMP_TOLERANCE_SECONDS = 300

export interface HmacCheck {
  /** The connection's signing key; a missing or empty one fails the check. */
  key: unknown
  /** The timestamp header's value: Unix seconds. */
  timestamp: string | undefined
  /** The signature header's value: the HMAC-SHA256 in hex. */
  signature: string | undefined
  /** What was signed, given the timestamp: the parts are fed to the HMAC in order. */
  signed: (timestamp: string) => Array<string | Buffer>
  receivedAt: Date
  toleranceSeconds?: number
}

/**
 * A timestamped HMAC-SHA256 signature check: the timestamp must be within the tolerance (so an
 * old request cannot be replayed) and the signature must match, compared in constant time.
 * Reasons never quote the key or the expected signature.
 */
export function checkHmacSignature(check: HmacCheck): WebhookVerdict {
  const { key, timestamp, signature } = check
  if (typeof key !== 'string' || key === '') {
    return reject('no webhook signing key is configured for this connection')
  }
  if (!timestamp || !signature) return reject('the signature or timestamp header is missing')
  if (!/^\d{1,12}$/.test(timestamp)) return reject('the timestamp is not a number of seconds')
  const tolerance = check.toleranceSeconds ?? DEFAULT_TIMESTAMP_TOLERANCE_SECONDS
  const skew = Math.abs(check.receivedAt.getTime() / 1000 - Number(timestamp))
  if (skew > tolerance) return reject(`the timestamp is more than ${tolerance} s away`)
  const hmac = createHmac('sha256', key)
  for (const part of check.signed(timestamp)) hmac.update(part)
  const expected = hmac.digest()
  const given = /^[0-9a-f]{64}$/i.test(signature) ? Buffer.from(signature, 'hex') : undefined
  if (!given || !timingSafeEqual(given, expected)) return reject('the signature does not match')
  return { ok: true }
}

function reject(reason: string): WebhookVerdict {
  return { ok: false, status: 401, reason }
}

export interface StandardWebhookCheck {
  /** The endpoint's secret: `whsec_` and the base64 of the key. */
  secret: unknown
  id: string | undefined
  timestamp: string | undefined
  /** `v1,<base64>` entries, space-separated (several while a secret is rotated). */
  signature: string | undefined
  rawBody: Buffer
  receivedAt: Date
  toleranceSeconds?: number
}

/**
 * The Standard Webhooks signature (Svix and the vendors on it, Fathom among them): HMAC-SHA256
 * with the base64-decoded secret over `{webhook-id}.{webhook-timestamp}.{body}`, base64, matched
 * in constant time against any `v1,` entry of `webhook-signature`; the timestamp within the
 * tolerance. https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
 */
export function checkStandardWebhookSignature(check: StandardWebhookCheck): WebhookVerdict {
  const { secret, id, timestamp, signature } = check
  if (typeof secret !== 'string' || secret === '') {
    return reject('no webhook secret is configured for this connection')
  }
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64')
  if (key.length === 0) return reject('the configured webhook secret is not a whsec_ secret')
  if (!id || !timestamp || !signature) {
    return reject('the webhook-id, webhook-timestamp or webhook-signature header is missing')
  }
  if (!/^\d{1,12}$/.test(timestamp)) return reject('the timestamp is not a number of seconds')
  const tolerance = check.toleranceSeconds ?? DEFAULT_TIMESTAMP_TOLERANCE_SECONDS
  const skew = Math.abs(check.receivedAt.getTime() / 1000 - Number(timestamp))
  if (skew > tolerance) return reject(`the timestamp is more than ${tolerance} s away`)
  const expected = createHmac('sha256', key)
    .update(`${id}.${timestamp}.`)
    .update(check.rawBody)
    .digest()
  for (const entry of signature.split(' ')) {
    const [version, value] = entry.split(',', 2)
    if (version !== 'v1' || !value) continue
    const given = Buffer.from(value, 'base64')
    if (given.length === expected.length && timingSafeEqual(given, expected)) return { ok: true }
  }
  return reject('the signature does not match')
}
