import http from 'node:http'
import type { AddressInfo } from 'node:net'

/**
 * A loopback change-feed server: records of three kinds, each change numbered by a global
 * sequence. `GET /records?after=<seq>&limit=<n>` (Bearer auth) returns the changes after a
 * sequence number in order, like the "updated since" feeds most vendors offer.
 */
export type FakeKind = 'person' | 'account' | 'activity'

export interface FakeRecord {
  kind: FakeKind
  id: string
  seq: number
  updatedAt: string
  deleted?: boolean
  [field: string]: unknown
}

export interface PagerFakeOptions {
  apiKey?: string
  people?: number
  accounts?: number
  activities?: number
  /** Delay before answering each /records request, to give tests a window mid-sync. */
  delayMs?: number
  /** Answer the first N /records requests with this HTTP status (transient failures). */
  failFirst?: { count: number; status: number }
  /** Answer the /records requests at these positions (0 = the first) with HTTP 503. */
  failRequests?: number[]
}

export interface PagerFake {
  url: string
  apiKey: string
  /** The `after` parameter of every /records request, in order. */
  requests: number[]
  /** Current state of every record, latest version, deleted ones included. */
  records(): FakeRecord[]
  insert(kind: FakeKind, fields: Record<string, unknown>): FakeRecord
  update(kind: FakeKind, id: string, patch: Record<string, unknown>): FakeRecord
  remove(kind: FakeKind, id: string): FakeRecord
  setDelay(ms: number): void
  /**
   * Calls `fn` with the `after` of each /records request as it arrives, before its page is
   * read: a test's way to change the feed between two pages of one sync.
   */
  onRequest(fn: ((after: number) => void) | undefined): void
  close(): Promise<void>
}

export async function startPagerFake(options: PagerFakeOptions = {}): Promise<PagerFake> {
  const apiKey = options.apiKey ?? 'fake-api-key-0001'
  let seq = 0
  let delayMs = options.delayMs ?? 0
  let failuresLeft = options.failFirst?.count ?? 0
  let onRequest: ((after: number) => void) | undefined
  const byKey = new Map<string, FakeRecord>()
  const requests: number[] = []
  const clock = Date.parse('2026-01-01T00:00:00Z')

  const put = (kind: FakeKind, id: string, fields: Record<string, unknown>): FakeRecord => {
    seq += 1
    const prev = byKey.get(`${kind}:${id}`)
    const rec: FakeRecord = {
      ...(prev ?? {}),
      ...fields,
      kind,
      id,
      seq,
      updatedAt: new Date(clock + seq * 1000).toISOString(),
    }
    // Re-inserting keeps map order by sequence, so the feed reads in change order.
    byKey.delete(`${kind}:${id}`)
    byKey.set(`${kind}:${id}`, rec)
    return rec
  }

  for (let i = 1; i <= (options.accounts ?? 0); i++) put('account', `acc-${i}`, seedAccount(i))
  for (let i = 1; i <= (options.people ?? 0); i++)
    put('person', `p-${i}`, seedPerson(i, options.accounts ?? 0))
  for (let i = 1; i <= (options.activities ?? 0); i++)
    put('activity', `act-${i}`, seedActivity(i, options.people ?? 0))

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify(body))
    }
    if (req.headers.authorization !== `Bearer ${apiKey}`) {
      send(401, { error: 'unauthorized', message: 'Invalid API key' })
      return
    }
    if (url.pathname === '/health') {
      send(200, { ok: true, records: byKey.size })
      return
    }
    if (url.pathname !== '/records') {
      send(404, { error: 'not_found' })
      return
    }
    const after = Number(url.searchParams.get('after') ?? '0')
    const limit = Math.min(Number(url.searchParams.get('limit') ?? '100'), 1000)
    if (!Number.isFinite(after) || !Number.isFinite(limit) || limit <= 0) {
      send(400, { error: 'bad_request', message: 'after and limit must be numbers' })
      return
    }
    requests.push(after)
    onRequest?.(after)
    if (options.failRequests?.includes(requests.length - 1)) {
      send(503, { error: 'unavailable' })
      return
    }
    if (failuresLeft > 0) {
      failuresLeft -= 1
      send(options.failFirst?.status ?? 503, { error: 'unavailable' })
      return
    }
    const changed = [...byKey.values()].filter((r) => r.seq > after).sort((a, b) => a.seq - b.seq)
    const page = changed.slice(0, limit)
    const body = {
      records: page,
      nextAfter: page.length > 0 ? page[page.length - 1]!.seq : after,
      hasMore: changed.length > limit,
    }
    setTimeout(() => send(200, body), delayMs)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo

  return {
    url: `http://127.0.0.1:${port}`,
    apiKey,
    requests,
    records: () => [...byKey.values()],
    insert: (kind, fields) =>
      put(kind, typeof fields.id === 'string' ? fields.id : `${kind}-${seq + 1}`, fields),
    update: (kind, id, patch) => {
      if (!byKey.has(`${kind}:${id}`)) throw new Error(`no ${kind} ${id}`)
      return put(kind, id, patch)
    },
    remove: (kind, id) => put(kind, id, { deleted: true }),
    setDelay: (ms) => {
      delayMs = ms
    },
    onRequest: (fn) => {
      onRequest = fn
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

function seedAccount(i: number): Record<string, unknown> {
  return {
    name: `  Account ${i} Inc `,
    website: `https://www.Account${i}.example.com/about`,
    industry: i % 2 === 0 ? 'Software' : 'Manufacturing',
    employees: String(10 * i),
    revenue: `${1000 * i}.50`,
  }
}

function seedPerson(i: number, accounts: number): Record<string, unknown> {
  return {
    email: ` Person${i}@Example.COM `,
    first_name: `First${i}`,
    last_name: `Last${i}`,
    title: 'Buyer',
    phone: `+1-555-${String(i).padStart(4, '0')}`,
    company: accounts > 0 ? { id: `acc-${((i - 1) % accounts) + 1}` } : null,
  }
}

function seedActivity(i: number, people: number): Record<string, unknown> {
  return {
    type: i % 2 === 0 ? 'email_open' : 'intent_signal',
    channel: i % 2 === 0 ? 'email' : 'intent',
    occurred_at: new Date(Date.parse('2026-02-01T00:00:00Z') + i * 60_000).toISOString(),
    person_id: people > 0 ? `p-${((i - 1) % people) + 1}` : null,
    details: { subject: `Subject ${i}`, score: i },
  }
}
