/**
 * A loopback fake of Fathom's External API v1 (https://developers.fathom.ai, ../shared/vendor-apis.md
 * §5): `X-Api-Key` auth (401), `GET /meetings` newest first in fixed pages of 10 with an opaque
 * `next_cursor`, `created_after` compared with `created_at`, content only when its `include_*`
 * flag is sent; 429 with RateLimit-* headers when throttled. It also signs webhook deliveries
 * the Standard Webhooks way, as Fathom does.
 */
import { createHmac, randomBytes } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'

export interface FathomFakeMeeting {
  recording_id: number
  title: string
  created_at: string
  recording_start_time: string
  recording_end_time: string
  calendar_invitees: Array<{
    name: string
    email: string
    email_domain: string
    is_external: boolean
  }>
  transcript: Array<{ speaker: { display_name: string }; text: string; timestamp: string }>
  default_summary: { template_name: string; markdown_formatted: string }
  action_items: Array<{ description: string; completed: boolean }>
  [key: string]: unknown
}

export interface FathomFake {
  url: string
  apiKey: string
  /** whsec_ secret of the webhook this fake "created". */
  webhookSecret: string
  readonly requests: Array<{ path: string; query: Record<string, string>; status: number }>
  addMeeting(
    meeting: Partial<FathomFakeMeeting> & { recording_id: number; created_at: string },
  ): FathomFakeMeeting
  addRawMeeting(item: Record<string, unknown>): void
  throttleNext(count: number, resetSeconds?: number): void
  /** Headers and body of a delivery of `meeting`, signed with the webhook secret (or `secret`). */
  signedDelivery(
    meeting: Record<string, unknown>,
    options?: { id?: string; timestamp?: number; secret?: string },
  ): { headers: Record<string, string>; body: string }
  close(): Promise<void>
}

export async function startFathomFake(): Promise<FathomFake> {
  const apiKey = `fathom_${randomBytes(12).toString('hex')}`
  const webhookSecret = `whsec_${randomBytes(24).toString('base64')}`
  const meetings: Array<Record<string, unknown>> = []
  const requests: FathomFake['requests'] = []
  let throttle = { count: 0, reset: 1 }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    const query = Object.fromEntries(url.searchParams)
    const record = { path: url.pathname, query, status: 0 }
    requests.push(record)
    const send = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      record.status = status
      res.writeHead(status, { 'content-type': 'application/json', ...headers })
      res.end(JSON.stringify(body))
    }
    if (req.headers['x-api-key'] !== apiKey) return send(401, { error: 'Unauthorized' })
    if (url.pathname !== '/external/v1/meetings') return send(404, { error: 'Not found' })
    if (throttle.count > 0) {
      throttle.count -= 1
      return send(
        429,
        { error: 'Too many requests' },
        {
          'ratelimit-limit': '60',
          'ratelimit-remaining': '0',
          'ratelimit-reset': String(throttle.reset),
        },
      )
    }
    const after = query['created_after']
      ? Date.parse(query['created_after'])
      : Number.NEGATIVE_INFINITY
    if (Number.isNaN(after)) return send(400, { error: 'created_after must be ISO 8601' })
    const offset = query['cursor']
      ? (JSON.parse(Buffer.from(query['cursor'], 'base64').toString()) as { offset: number }).offset
      : 0
    const createdOf = (m: Record<string, unknown>) => Date.parse(String(m['created_at']))
    const matching = meetings
      .filter((m) => createdOf(m) > after)
      .sort((a, b) => createdOf(b) - createdOf(a))
    const items = matching.slice(offset, offset + 10).map((m) => {
      const item = { ...m }
      if (query['include_transcript'] !== 'true') delete item['transcript']
      if (query['include_summary'] !== 'true') delete item['default_summary']
      if (query['include_action_items'] !== 'true') delete item['action_items']
      return item
    })
    const end = offset + items.length
    const next_cursor =
      end < matching.length ? Buffer.from(JSON.stringify({ offset: end })).toString('base64') : null
    return send(200, { limit: 10, next_cursor, items })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  const sign = (secret: string, id: string, timestamp: number, body: string): string =>
    `v1,${createHmac('sha256', Buffer.from(secret.replace(/^whsec_/, ''), 'base64'))
      .update(`${id}.${timestamp}.${body}`)
      .digest('base64')}`
  return {
    url: `http://127.0.0.1:${port}/external/v1`,
    apiKey,
    webhookSecret,
    requests,
    addMeeting: (meeting) => {
      const start = Date.parse(meeting.created_at) - 60 * 60_000
      const full: FathomFakeMeeting = {
        title: `Meeting ${meeting.recording_id}`,
        meeting_title: `Meeting ${meeting.recording_id}`,
        url: `https://fathom.video/calls/${meeting.recording_id}`,
        share_url: `https://fathom.video/share/${meeting.recording_id}`,
        scheduled_start_time: new Date(start).toISOString(),
        recording_start_time: new Date(start + 30_000).toISOString(),
        recording_end_time: new Date(start + 30_000 + 45 * 60_000).toISOString(),
        calendar_invitees: [
          {
            name: 'Alice Johnson',
            email: 'alice@acme.com',
            email_domain: 'acme.com',
            is_external: false,
          },
          {
            name: 'John Smith',
            email: 'John.Smith@Client.com',
            email_domain: 'client.com',
            is_external: true,
          },
        ],
        recorded_by: {
          name: 'Alice Johnson',
          email: 'alice@acme.com',
          team: 'Sales',
          email_domain: 'acme.com',
        },
        transcript: [
          {
            speaker: { display_name: 'Alice Johnson' },
            text: 'Thanks for joining.',
            timestamp: '00:00:05',
          },
          {
            speaker: { display_name: 'John Smith' },
            text: 'Happy to be here.',
            timestamp: '00:00:09',
          },
        ],
        default_summary: { template_name: 'General', markdown_formatted: '## Summary\nThey met.' },
        action_items: [{ description: 'Send the proposal', completed: false }],
        ...meeting,
      }
      meetings.push(full)
      return full
    },
    addRawMeeting: (item) => meetings.push(item),
    throttleNext: (count, resetSeconds = 1) => {
      throttle = { count, reset: resetSeconds }
    },
    signedDelivery: (meeting, options = {}) => {
      const id = options.id ?? `msg_${randomBytes(10).toString('hex')}`
      const timestamp = options.timestamp ?? Math.floor(Date.now() / 1000)
      const body = JSON.stringify(meeting)
      return {
        body,
        headers: {
          'content-type': 'application/json',
          'webhook-id': id,
          'webhook-timestamp': String(timestamp),
          'webhook-signature': sign(options.secret ?? webhookSecret, id, timestamp, body),
        },
      }
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
