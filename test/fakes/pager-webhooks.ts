import { createHmac } from 'node:crypto'
import http from 'node:http'
import type { FakeRecord } from './pager.js'

/**
 * The pager fake's webhook sender. It signs like Customer.io's reporting webhooks: the hex
 * HMAC-SHA256 of `v0:<timestamp>:<raw body>` with the connection's signing key goes in
 * X-CIO-Signature, the Unix timestamp in X-CIO-Timestamp. One event per request.
 */
export interface PagerWebhookEvent {
  event_id: string
  event_type: string
  /** Unix seconds. */
  timestamp: number
  stream?: string
  records: Array<Partial<FakeRecord> & { kind: FakeRecord['kind']; id: string }>
}

export interface Delivery {
  status: number
  body: string
}

export interface DeliverOptions {
  /** Signs with this key. */
  key: string
  /** The timestamp signed and sent (default: now). */
  timestamp?: number
  /** Sends this signature instead of the right one. */
  signature?: string
  /** Sends these bytes instead of the event's JSON (still signed). */
  rawBody?: Buffer
  /** Leaves the signature headers out. */
  unsigned?: boolean
  /** Sends the body in chunks without a Content-Length. */
  chunked?: boolean
}

/** The signature the source would send for a body and timestamp. */
export function signPagerWebhook(key: string, timestamp: number, body: Buffer): string {
  return createHmac('sha256', key).update(`v0:${timestamp}:`).update(body).digest('hex')
}

/** A body with its event id, type and timestamp filled in. */
export function pagerEvent(
  id: string,
  records: PagerWebhookEvent['records'],
  extra: Partial<PagerWebhookEvent> = {},
): PagerWebhookEvent {
  return {
    event_id: id,
    event_type: 'records.changed',
    timestamp: Math.floor(Date.now() / 1000),
    records,
    ...extra,
  }
}

/** POSTs one signed delivery to `url` and returns the answer (a cut connection after a 413 is fine). */
export function deliverPagerWebhook(
  url: string,
  event: PagerWebhookEvent | null,
  options: DeliverOptions,
): Promise<Delivery> {
  const body = options.rawBody ?? Buffer.from(JSON.stringify(event))
  const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000)
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (!options.unsigned) {
    headers['x-cio-timestamp'] = String(timestamp)
    headers['x-cio-signature'] = options.signature ?? signPagerWebhook(options.key, timestamp, body)
  }
  if (!options.chunked) headers['content-length'] = String(body.length)
  return new Promise((resolve, reject) => {
    let answered: Delivery | undefined
    const req = http.request(url, { method: 'POST', headers }, (res) => {
      answered = { status: res.statusCode ?? 0, body: '' }
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (answered!.body += chunk))
      res.on('end', () => resolve(answered!))
      res.on('error', () => resolve(answered!))
    })
    // A receiver may answer before the body is sent (413) and then cut the connection: the
    // answer is what counts.
    req.on('error', (err) => (answered ? resolve(answered) : reject(err)))
    if (options.chunked) {
      for (let i = 0; i < body.length; i += 16 * 1024) req.write(body.subarray(i, i + 16 * 1024))
      req.end()
    } else {
      req.end(body)
    }
  })
}
