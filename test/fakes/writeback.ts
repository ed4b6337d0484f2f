import http from 'node:http'
import type { AddressInfo } from 'node:net'

/**
 * A loopback fake of a CRM that takes field updates the way Salesforce's sObject Collections
 * update does (`PATCH /composite/sobjects`, `{ allOrNone: false, records: [{ attributes: { type },
 * id, ...fields }] }`, answered with one SaveResult per record, in order), plus a small account
 * feed (`GET /records?after=&limit=`) so syncs can hit its daily API limit, which Salesforce
 * reports as HTTP 403 `REQUEST_LIMIT_EXCEEDED`.
 */
export interface WritebackFakeOptions {
  apiKey?: string
  /** Accounts in the feed. */
  accounts?: number
  /** Delay before answering each request. */
  delayMs?: number
  /** Requests (of any kind) the daily limit still allows; unlimited when undefined. */
  quota?: number
  /** Answer the first N update requests with this HTTP status. */
  failFirst?: { count: number; status: number }
  /** Answer the first N feed requests with 429 and this Retry-After (seconds). */
  throttleFirst?: { count: number; retryAfterSeconds: number }
  /** Records whose update always fails (a permanent, per-record error). */
  reject?: Record<string, { statusCode: string; message: string }>
  /** Records whose update fails transiently this many times before it succeeds. */
  flaky?: Record<string, number>
}

export interface SaveResult {
  id: string
  success: boolean
  errors: Array<{ statusCode: string; message: string; fields: string[] }>
}

export interface WritebackFake {
  url: string
  apiKey: string
  /** Ids of each update request, in order. */
  batches: string[][]
  /** `after` of each feed request, with when it arrived (ms since the epoch). */
  feedRequests: Array<{ after: number; at: number }>
  /** Latest fields written to each record. */
  applied: Map<string, Record<string, unknown>>
  setQuota(requests: number | undefined): void
  setDelay(ms: number): void
  close(): Promise<void>
}

/** Salesforce status codes worth retrying: the record was busy, not wrong. */
export const TRANSIENT_STATUS_CODES = ['UNABLE_TO_LOCK_ROW', 'SERVER_UNAVAILABLE']

export async function startWritebackFake(
  options: WritebackFakeOptions = {},
): Promise<WritebackFake> {
  const apiKey = options.apiKey ?? 'writeback-key-0001'
  let quota = options.quota
  let delayMs = options.delayMs ?? 0
  let failuresLeft = options.failFirst?.count ?? 0
  let throttlesLeft = options.throttleFirst?.count ?? 0
  const flaky = new Map(Object.entries(options.flaky ?? {}))
  const batches: string[][] = []
  const feedRequests: Array<{ after: number; at: number }> = []
  const applied = new Map<string, Record<string, unknown>>()
  const accounts = Array.from({ length: options.accounts ?? 0 }, (_, i) => ({
    kind: 'account',
    id: `acc-${i + 1}`,
    seq: i + 1,
    name: `Account ${i + 1}`,
    updatedAt: new Date(Date.parse('2026-01-01T00:00:00Z') + (i + 1) * 1000).toISOString(),
  }))

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const send = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
        setTimeout(() => {
          res.writeHead(status, { 'content-type': 'application/json', ...headers })
          res.end(JSON.stringify(body))
        }, delayMs)
      }
      const url = new URL(req.url ?? '/', 'http://127.0.0.1')
      if (req.headers.authorization !== `Bearer ${apiKey}`) {
        send(401, [{ errorCode: 'INVALID_SESSION_ID', message: 'Session expired or invalid' }])
        return
      }
      if (url.pathname === '/health') return send(200, { ok: true })
      if (quota !== undefined) {
        if (quota <= 0) {
          send(403, [
            { errorCode: 'REQUEST_LIMIT_EXCEEDED', message: 'TotalRequests Limit exceeded.' },
          ])
          return
        }
        quota -= 1
      }
      if (req.method === 'GET' && url.pathname === '/records') {
        const after = Number(url.searchParams.get('after') ?? '0')
        const limit = Number(url.searchParams.get('limit') ?? '100')
        feedRequests.push({ after, at: Date.now() })
        if (throttlesLeft > 0) {
          throttlesLeft -= 1
          send(
            429,
            { error: 'throttled' },
            {
              'retry-after': String(options.throttleFirst?.retryAfterSeconds ?? 1),
            },
          )
          return
        }
        const page = accounts.filter((a) => a.seq > after).slice(0, limit)
        const last = page.at(-1)?.seq ?? after
        send(200, { records: page, nextAfter: last, hasMore: last < accounts.length })
        return
      }
      if (req.method === 'PATCH' && url.pathname === '/composite/sobjects') {
        if (failuresLeft > 0) {
          failuresLeft -= 1
          send(options.failFirst?.status ?? 503, [
            { errorCode: 'SERVER_UNAVAILABLE', message: 'Try later' },
          ])
          return
        }
        let body: { records?: Array<Record<string, unknown>> }
        try {
          body = JSON.parse(Buffer.concat(chunks).toString()) as typeof body
        } catch {
          send(400, [{ errorCode: 'JSON_PARSER_ERROR', message: 'Malformed JSON' }])
          return
        }
        const records = body.records ?? []
        if (records.length > 200) {
          send(400, [{ errorCode: 'EXCEEDED_ID_LIMIT', message: 'record limit reached' }])
          return
        }
        batches.push(records.map((r) => String(r.id)))
        send(
          200,
          records.map((record) => save(record)),
        )
        return
      }
      send(404, [{ errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' }])
    })
  })

  const save = (record: Record<string, unknown>): SaveResult => {
    const { id, attributes: _attributes, ...fields } = record
    const key = String(id)
    const rejected = options.reject?.[key]
    if (rejected)
      return { id: key, success: false, errors: [{ ...rejected, fields: Object.keys(fields) }] }
    const left = flaky.get(key) ?? 0
    if (left > 0) {
      flaky.set(key, left - 1)
      return {
        id: key,
        success: false,
        errors: [
          {
            statusCode: 'UNABLE_TO_LOCK_ROW',
            message: 'unable to obtain exclusive access to this record',
            fields: [],
          },
        ],
      }
    }
    applied.set(key, fields)
    return { id: key, success: true, errors: [] }
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    apiKey,
    batches,
    feedRequests,
    applied,
    setQuota: (requests) => {
      quota = requests
    },
    setDelay: (ms) => {
      delayMs = ms
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
