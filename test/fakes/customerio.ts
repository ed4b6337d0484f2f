/**
 * A loopback fake of Customer.io's App API (https://docs.customer.io/api/app/,
 * ../shared/vendor-apis.md §2): Bearer App API key (401 otherwise), `/v1/workspaces`,
 * `GET /v1/messages` (deliveries filtered on creation time by start_ts/end_ts, paged by
 * `start`/`next`), `POST /v1/customers` (identifiers, paged the same way), bare 429s with no
 * Retry-After when throttled. It also signs Reporting Webhooks deliveries as Customer.io does.
 */
import { createHmac, randomBytes } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'

export interface CioDelivery {
  id: string
  customer_id: string | null
  customer_identifiers: { id: string | null; email: string | null; cio_id: string }
  recipient: string
  subject: string
  campaign_id: number | null
  action_id: number | null
  broadcast_id: number | null
  type: 'email' | 'push' | 'sms'
  created: number
  metrics: Record<string, unknown>
}

export interface CustomerioFake {
  url: string
  appApiKey: string
  signingKey: string
  readonly requests: Array<{
    method: string
    path: string
    query: Record<string, string>
    status: number
  }>
  addDelivery(delivery: Partial<CioDelivery> & { id: string; created: number }): CioDelivery
  /** Marks a delivery as having reached `metric` at `at` (unix seconds): an open days later. */
  reach(id: string, metric: string, at: number): void
  addRawDelivery(row: Record<string, unknown>): void
  addCustomer(identifiers: { id: string | null; email: string | null; cio_id: string }): void
  /** The next `count` requests answer a bare 429. */
  throttleNext(count: number): void
  signed(
    event: Record<string, unknown>,
    options?: { timestamp?: number; key?: string },
  ): {
    headers: Record<string, string>
    body: string
  }
  close(): Promise<void>
}

export async function startCustomerioFake(
  options: { pageSize?: number } = {},
): Promise<CustomerioFake> {
  const appApiKey = `cio_app_${randomBytes(12).toString('hex')}`
  const signingKey = randomBytes(24).toString('hex')
  const deliveries: Array<Record<string, unknown>> = []
  const customers: Array<Record<string, unknown>> = []
  const requests: CustomerioFake['requests'] = []
  let throttled = 0
  const pageSize = options.pageSize ?? 50

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    const query = Object.fromEntries(url.searchParams)
    const record = { method: req.method ?? 'GET', path: url.pathname, query, status: 0 }
    requests.push(record)
    const send = (status: number, body: unknown): void => {
      record.status = status
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify(body))
    }
    if (req.headers.authorization !== `Bearer ${appApiKey}`) {
      return send(401, { meta: { error: 'Unauthorized request' } })
    }
    if (throttled > 0) {
      throttled -= 1
      return send(429, { meta: { error: 'Too Many Requests' } })
    }
    const paged = <T>(rows: T[]) => {
      const limit = Math.min(Number(query['limit'] ?? pageSize), pageSize, 1000)
      const offset = query['start']
        ? Number(Buffer.from(query['start'], 'base64url').toString())
        : 0
      const items = rows.slice(offset, offset + limit)
      const end = offset + items.length
      return {
        items,
        next: end < rows.length ? Buffer.from(String(end)).toString('base64url') : '',
      }
    }
    if (url.pathname === '/v1/workspaces')
      return send(200, { workspaces: [{ id: 1, name: 'Acme' }] })
    if (url.pathname === '/v1/messages' && req.method === 'GET') {
      const from = Number(query['start_ts'] ?? 0)
      const to = Number(query['end_ts'] ?? Number.MAX_SAFE_INTEGER)
      const rows = deliveries
        .filter((d) => (query['type'] ? d['type'] === query['type'] : true))
        .filter(
          (d) => typeof d['created'] !== 'number' || (d['created'] >= from && d['created'] <= to),
        )
      const { items, next } = paged(rows)
      return send(200, { messages: items, next })
    }
    if (url.pathname === '/v1/customers' && req.method === 'POST') {
      req.resume()
      const { items, next } = paged(customers)
      return send(200, { identifiers: items, ids: items.map((c) => c['id']), next })
    }
    return send(404, { meta: { error: 'Not found' } })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    appApiKey,
    signingKey,
    requests,
    addDelivery: (delivery) => {
      const full: CioDelivery = {
        customer_id: `cust-${delivery.id}`,
        customer_identifiers: {
          id: `cust-${delivery.id}`,
          email: `${delivery.id}@example.com`,
          cio_id: `cio-${delivery.id}`,
        },
        recipient: `${delivery.id}@example.com`,
        subject: 'Welcome to Acme',
        campaign_id: 23,
        action_id: 96,
        broadcast_id: null,
        type: 'email',
        metrics: { sent: delivery.created + 1, delivered: delivery.created + 5 },
        ...delivery,
      }
      deliveries.push(full as unknown as Record<string, unknown>)
      return full
    },
    reach: (id, metric, at) => {
      const found = deliveries.find((d) => d['id'] === id)
      if (!found) throw new Error(`no delivery ${id}`)
      ;(found['metrics'] as Record<string, unknown>)[metric] = at
    },
    addRawDelivery: (row) => deliveries.push(row),
    addCustomer: (identifiers) => customers.push(identifiers),
    throttleNext: (count) => {
      throttled = count
    },
    signed: (event, opts = {}) => {
      const timestamp = opts.timestamp ?? Math.floor(Date.now() / 1000)
      const body = JSON.stringify(event)
      const signature = createHmac('sha256', opts.key ?? signingKey)
        .update(`v0:${timestamp}:${body}`)
        .digest('hex')
      return {
        body,
        headers: {
          'content-type': 'application/json',
          'x-cio-timestamp': String(timestamp),
          'x-cio-signature': signature,
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
