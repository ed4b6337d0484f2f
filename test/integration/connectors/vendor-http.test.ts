import { randomBytes } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import net from 'node:net'
import { gzipSync } from 'node:zlib'
import { afterEach, describe, expect, it } from 'vitest'
import { VendorError } from '../../../shared/errors.js'
import { vendorJson } from '../../../src-agent/connectors/http.js'
import type { RetryEvent } from '../../../src-agent/connectors/retry.js'
import { sendHttp } from '../../../src-agent/connectors/transport.js'
import { memoryLogger } from '../../helpers/agent.js'

/**
 * The vendor HTTP client against loopback servers that misbehave on purpose: every deadline ends
 * a call that would otherwise wait forever, a cut body is an error and not a pending promise, and
 * vendorJson retries what is transient (and only that) under the one retry policy.
 */
type Handler = (req: http.IncomingMessage, res: http.ServerResponse, n: number) => void

describe('vendor HTTP: deadlines and cut bodies', () => {
  const servers: http.Server[] = []
  const sockets = new Set<Socket>()
  afterEach(async () => {
    for (const socket of sockets) socket.destroy()
    for (const server of servers.splice(0)) await new Promise((r) => server.close(r))
  })

  /** A loopback server answering the n-th request (1-based) with `handler`. */
  async function serve(handler: Handler): Promise<string> {
    let n = 0
    const server = http.createServer((req, res) => handler(req, res, ++n))
    server.on('connection', (socket) => {
      sockets.add(socket)
      socket.on('close', () => sockets.delete(socket))
    })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    servers.push(server)
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  }

  const json = (res: http.ServerResponse, status: number, body: unknown, headers = {}) => {
    const text = JSON.stringify(body)
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      ...headers,
    })
    res.end(text)
  }

  /** Why a call failed: its VendorError's code and the reason and detail its cause gives. */
  async function failure(
    call: Promise<unknown>,
  ): Promise<{ code: string; reason: string; detail: string }> {
    const err = await call.then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(VendorError)
    const vendorError = err as VendorError
    expect(vendorError.retryable).toBe(true)
    const cause = vendorError.cause as { reason?: unknown; detail?: unknown } | undefined
    return { code: vendorError.code, reason: String(cause?.reason), detail: String(cause?.detail) }
  }

  it('fails a body cut short of its Content-Length instead of waiting for the rest', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': 1000 })
      res.write('{"records": [')
      setTimeout(() => res.socket?.destroy(), 20)
    })
    expect(await failure(sendHttp({ vendor: 'Acme', url }))).toEqual({
      code: 'vendor_unavailable',
      reason: 'cut_body',
      detail: '13 of 1000 bytes',
    })
  })

  it('fails a chunked body that ends without its last chunk', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/csv' })
      res.write('Id,Name\n001,Acme\n')
      setTimeout(() => res.socket?.destroy(), 20)
    })
    expect(await failure(sendHttp({ vendor: 'Acme', url }))).toEqual({
      code: 'vendor_unavailable',
      reason: 'cut_body',
      detail: '17 bytes without the last chunk',
    })
  })

  it('gives up on a server that never answers, and on one that goes quiet mid-body', async () => {
    const silent = await serve(() => undefined)
    const started = Date.now()
    expect(
      await failure(sendHttp({ vendor: 'Acme', url: silent, timeouts: { idleTimeoutMs: 200 } })),
    ).toMatchObject({ reason: 'idle_timeout', detail: '200 ms' })
    expect(Date.now() - started).toBeLessThan(2_000)

    const quiet = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': 100 })
      res.write('{"half":')
    })
    expect(
      await failure(sendHttp({ vendor: 'Acme', url: quiet, timeouts: { idleTimeoutMs: 200 } })),
    ).toMatchObject({ reason: 'idle_timeout', detail: '200 ms' })
  })

  it('ends a trickling answer at the overall deadline', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' })
      const timer = setInterval(() => res.write('.'), 20)
      res.on('close', () => clearInterval(timer))
    })
    const started = Date.now()
    expect(
      await failure(
        sendHttp({ vendor: 'Acme', url, timeouts: { idleTimeoutMs: 200, requestTimeoutMs: 400 } }),
      ),
    ).toMatchObject({ reason: 'request_timeout', detail: '400 ms' })
    expect(Date.now() - started).toBeLessThan(2_000)
  })

  it('gives up on a connection that is never made', async () => {
    // A socket whose name lookup never ends stays "connecting" for good.
    const agent = new http.Agent()
    agent.createConnection = () =>
      net.connect({ host: 'vendor.invalid', port: 80, lookup: () => undefined })
    expect(
      await failure(
        sendHttp({
          vendor: 'Acme',
          url: 'http://vendor.invalid/',
          agent,
          timeouts: { connectTimeoutMs: 150 },
        }),
      ),
    ).toMatchObject({ reason: 'connect_timeout', detail: '150 ms' })
  })

  it("rejects with the caller's reason when the caller cancels", async () => {
    const url = await serve(() => undefined)
    const controller = new AbortController()
    const reason = new Error('stopped by the admin')
    setTimeout(() => controller.abort(reason), 50)
    await expect(sendHttp({ vendor: 'Acme', url, signal: controller.signal })).rejects.toBe(reason)
  })

  it('reads a large body byte for byte, sent in pieces, with and without its Content-Length', async () => {
    const bytes = randomBytes(3 * 2 ** 20 + 17)
    const url = await serve((req, res) => {
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        ...(req.url === '/sized' ? { 'content-length': bytes.length } : {}),
      })
      // Pieces of odd sizes, a few at a time, so the body arrives in many chunks.
      let at = 0
      const next = (): void => {
        for (let n = 0; n < 8 && at < bytes.length; n++) {
          const end = Math.min(at + 40_000 + ((at / 7) % 9_000), bytes.length)
          res.write(bytes.subarray(at, end))
          at = end
        }
        if (at < bytes.length) setImmediate(next)
        else res.end()
      }
      next()
    })
    for (const path of ['/sized', '/chunked']) {
      const answer = await sendHttp({ vendor: 'Acme', url: `${url}${path}` })
      expect(answer.status, path).toBe(200)
      expect(answer.body.length, path).toBe(bytes.length)
      expect(answer.body.equals(bytes), path).toBe(true)
    }
  })

  it('reads a gzip-encoded body', async () => {
    const url = await serve((_req, res) => {
      const body = gzipSync(JSON.stringify({ ok: true }))
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
        'content-length': body.length,
      })
      res.end(body)
    })
    await expect(vendorJson(url, { vendor: 'Acme' })).resolves.toEqual({ ok: true })
  })

  it('retries cut bodies, resets, stalls, 5xx and maintenance pages, reporting each', async () => {
    const url = await serve((req, res, n) => {
      switch (n) {
        case 1:
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': 50 })
          res.write('{"items":[1,')
          return void setTimeout(() => res.socket?.destroy(), 10)
        case 2:
          return req.socket.resetAndDestroy()
        case 3:
          res.writeHead(503, { 'content-type': 'text/html' })
          return res.end('<html><body>Down for maintenance</body></html>')
        case 4:
          return json(res, 500, [{ errorCode: 'UNKNOWN_EXCEPTION', message: 'oops' }])
        case 5:
          return // stalls past the idle timeout
        default:
          return json(res, 200, { items: [1, 2, 3] })
      }
    })
    const events: RetryEvent[] = []
    const { log, lines } = memoryLogger('info')
    const body = await vendorJson(`${url}/v1/items?api_key=secret-in-the-url`, {
      vendor: 'Acme',
      timeouts: { idleTimeoutMs: 200 },
      retry: { baseDelayMs: 5, maxAttempts: 6 },
      onRetry: (event) => events.push(event),
      log,
    })
    expect(body).toEqual({ items: [1, 2, 3] })
    expect(events.map((e) => [e.attempt, e.reason, e.detail])).toEqual([
      [1, 'cut_body', '12 of 50 bytes'],
      [2, 'connection_reset', 'ECONNRESET'],
      [3, 'http_503', 'HTML page'],
      [4, 'http_500', 'UNKNOWN_EXCEPTION'],
      [5, 'idle_timeout', '200 ms'],
    ])
    // Each retry is logged at info with its reason; the URL's query (a key) never is.
    const logged = lines()
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>)
    expect(logged).toHaveLength(5)
    expect(logged[0]).toMatchObject({
      level: 30,
      msg: 'vendor call failed; retrying',
      vendor: 'Acme',
      call: 'GET /v1/items',
      reason: 'cut_body',
      detail: '12 of 50 bytes',
    })
    expect(lines()).not.toContain('secret-in-the-url')
  })

  it('waits for Retry-After or RateLimit-Reset on 429', async () => {
    const url = await serve((_req, res, n) => {
      if (n === 1) return json(res, 429, { error: 'slow down' }, { 'retry-after': '1' })
      if (n === 2) return json(res, 429, { error: 'slow down' }, { 'ratelimit-reset': '1' })
      json(res, 200, { ok: true })
    })
    const events: RetryEvent[] = []
    const started = Date.now()
    await vendorJson(url, { vendor: 'Acme', onRetry: (e) => events.push(e) })
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_900)
    expect(events.map((e) => [e.reason, e.delayMs])).toEqual([
      ['http_429', 1_000],
      ['http_429', 1_000],
    ])
  })

  it('does not retry refused credentials or a request the vendor will never accept', async () => {
    let requests = 0
    const url = await serve((req, res) => {
      requests += 1
      if (req.url === '/auth') return json(res, 401, { error: 'bad key' })
      json(res, 404, { error: 'no such thing' })
    })
    await expect(vendorJson(`${url}/auth`, { vendor: 'Acme' })).rejects.toMatchObject({
      code: 'vendor_auth_failed',
      retryable: false,
      userMessage:
        'Acme rejected the credentials (HTTP 401). Reconnect Acme with valid credentials.',
    })
    const missing = vendorJson(`${url}/missing`, { vendor: 'Acme' })
    await expect(missing).rejects.toMatchObject({ code: 'vendor_bad_response', retryable: false })
    await expect(missing).rejects.toThrow(/HTTP 404\)\. Trying again will not help/)
    expect(requests).toBe(2)
  })

  it('gives up after the policy’s attempts with the last failure', async () => {
    let requests = 0
    const url = await serve((_req, res) => {
      requests += 1
      json(res, 502, { error: 'bad gateway' })
    })
    await expect(
      vendorJson(url, { vendor: 'Acme', retry: { baseDelayMs: 1, maxAttempts: 3 } }),
    ).rejects.toMatchObject({
      code: 'vendor_unavailable',
      userMessage: 'Acme answered HTTP 502; it will be retried.',
    })
    expect(requests).toBe(3)
  })
})
