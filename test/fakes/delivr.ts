/**
 * A loopback fake of Delivr.ai's intent feed as GTM Clarity's contract describes it
 * (../shared/vendor-apis.md §3): `X-Api-Key` auth (401 `{"error":"unauthorized"}`), /v1/health,
 * and two feeds paged by an opaque `nextCursor`, in time order, `since` inclusive, `limit` ≤ 500.
 * It can answer with 429 and Retry-After, as a throttled Delivr.ai does.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'

export interface DelivrSignal {
  id: string
  personId: string
  personEmail?: string
  accountDomain: string
  contentUrl: string
  contentTopic: string
  occurredAt: string
  dwellTimeSeconds: number
  sessionId: string
}

export interface DelivrEngagement {
  personId: string
  accountDomain: string
  topic: string
  score: number
  surge: boolean
  windowStart: string
  windowEnd: string
}

export interface DelivrFake {
  url: string
  apiKey: string
  /** Path and query of every request, in order. */
  readonly requests: Array<{ path: string; query: Record<string, string>; status: number }>
  addSignal(signal: Partial<DelivrSignal> & { id: string; occurredAt: string }): void
  /** A row as the feed will send it, whatever its shape (malformed rows). */
  addRawSignal(row: Record<string, unknown>): void
  addEngagement(row: Partial<DelivrEngagement> & { personId: string; windowEnd: string }): void
  /** The next `count` feed requests answer 429 with `Retry-After: <seconds>`. */
  throttleNext(count: number, retryAfterSeconds?: number): void
  close(): Promise<void>
}

export async function startDelivrFake(options: { apiKey?: string } = {}): Promise<DelivrFake> {
  const apiKey = options.apiKey ?? 'dlvr_live_0123456789abcdef'
  const signals: Array<Record<string, unknown>> = []
  const engagements: Array<Record<string, unknown>> = []
  const requests: DelivrFake['requests'] = []
  let throttle = { count: 0, seconds: 1 }

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
    if (req.headers['x-api-key'] !== apiKey) return send(401, { error: 'unauthorized' })
    if (url.pathname === '/v1/health') return send(200, { status: 'ok' })
    const feeds: Record<string, { rows: Array<Record<string, unknown>>; time: string }> = {
      '/v1/intent-signals': { rows: signals, time: 'occurredAt' },
      '/v1/member-engagement': { rows: engagements, time: 'windowEnd' },
    }
    const feed = feeds[url.pathname]
    if (!feed) return send(404, { error: 'not_found' })
    if (throttle.count > 0) {
      throttle.count -= 1
      return send(429, { error: 'rate_limited' }, { 'retry-after': String(throttle.seconds) })
    }
    const since = Date.parse(query['since'] ?? '')
    if (Number.isNaN(since)) return send(400, { error: 'since must be an ISO 8601 time' })
    const limit = Number(query['limit'] ?? 100)
    if (!Number.isInteger(limit) || limit < 1 || limit > 500) {
      return send(400, { error: 'limit must be between 1 and 500' })
    }
    const offset = query['cursor']
      ? Number(Buffer.from(query['cursor'], 'base64url').toString())
      : 0
    if (!Number.isInteger(offset) || offset < 0) return send(400, { error: 'invalid cursor' })
    // Rows whose time does not parse still come (a vendor's bad row), sorted last.
    const timeOf = (row: Record<string, unknown>) => {
      const t = Date.parse(String(row[feed.time]))
      return Number.isNaN(t) ? Number.MAX_SAFE_INTEGER : t
    }
    const matching = feed.rows
      .filter((row) => timeOf(row) >= since)
      .sort((a, b) => timeOf(a) - timeOf(b))
    const data = matching.slice(offset, offset + limit)
    const end = offset + data.length
    const nextCursor = end < matching.length ? Buffer.from(String(end)).toString('base64url') : null
    return send(200, { data, nextCursor })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    apiKey,
    requests,
    addSignal: (signal) =>
      signals.push({
        personId: `p-${signal.id}`,
        accountDomain: 'acme.com',
        contentUrl: 'https://vendor.example/pricing',
        contentTopic: 'Data Warehousing',
        dwellTimeSeconds: 42,
        sessionId: `s-${signal.id}`,
        ...signal,
      }),
    addRawSignal: (row) => signals.push(row),
    addEngagement: (row) =>
      engagements.push({
        accountDomain: 'acme.com',
        topic: 'Data Warehousing',
        score: 70,
        surge: false,
        windowStart: new Date(Date.parse(row.windowEnd) - 7 * 86_400_000).toISOString(),
        ...row,
      }),
    throttleNext: (count, retryAfterSeconds = 1) => {
      throttle = { count, seconds: retryAfterSeconds }
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
