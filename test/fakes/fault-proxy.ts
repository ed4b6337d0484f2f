import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Socket } from 'node:net'

/**
 * A loopback proxy in front of a fake vendor that breaks a share of its data requests the ways
 * real networks and real vendors do: bodies cut off mid-stream, connections reset, maintenance
 * pages, server errors, expired sessions and stalls. Which requests break, and how, follows from
 * a seed, so a failing run can be replayed.
 */
export type FaultKind =
  /** Headers with the full Content-Length, half the body, then the socket is destroyed. */
  | 'cut_body'
  /** The connection is reset (TCP RST) before any answer. */
  | 'reset'
  /** 503 with an HTML maintenance page. */
  | 'maintenance'
  /** 500 with Salesforce's `UNKNOWN_EXCEPTION` JSON error. */
  | 'server_error'
  /** 401 `INVALID_SESSION_ID`, as when the access token expired. */
  | 'expired_session'
  /** Nothing at all for `stallMs`, then the socket is destroyed. */
  | 'stall_headers'
  /** Headers and half the body, then nothing for `stallMs`, then the socket is destroyed. */
  | 'stall_body'

export const FAULT_KINDS: readonly FaultKind[] = [
  'cut_body',
  'reset',
  'maintenance',
  'server_error',
  'expired_session',
  'stall_headers',
  'stall_body',
]

export interface FaultProxyOptions {
  /** Seeds the choice of the requests that break. */
  seed: number
  /** Share of data requests that break (0–1), chosen at random from the seed. */
  share: number
  /** Instead of a share: break the 1st data request and every n-th after it (2: every other one). */
  every?: number
  /** Kinds to inject, in turn: the n-th broken request gets kinds[n % kinds.length]. */
  kinds?: readonly FaultKind[]
  /** How long a stall lasts before the proxy gives up on the socket (longer than the client's idle timeout). */
  stallMs?: number
  /** Which requests are data requests (default: Salesforce's versioned REST and Bulk paths). */
  isDataRequest?: (method: string, path: string) => boolean
}

export interface InjectedFault {
  kind: FaultKind
  method: string
  /** Path without the query string. */
  path: string
}

export interface FaultProxy {
  /** Give clients this base URL instead of the target's. */
  url: string
  /** Every fault injected so far, in order. */
  readonly injected: readonly InjectedFault[]
  /** Data requests seen (broken or not). */
  readonly dataRequests: number
  /** Faults injected per kind. */
  counts(): Partial<Record<FaultKind, number>>
  /** Stops (or resumes) injecting; requests then pass through untouched. */
  setEnabled(on: boolean): void
  close(): Promise<void>
}

const SALESFORCE_DATA = /^\/services\/data\/v\d+\.\d\//

export async function startFaultProxy(
  target: string,
  options: FaultProxyOptions,
): Promise<FaultProxy> {
  const kinds = options.kinds ?? FAULT_KINDS
  const stallMs = options.stallMs ?? 5_000
  const isData =
    options.isDataRequest ?? ((_method: string, path: string) => SALESFORCE_DATA.test(path))
  const random = mulberry32(options.seed)
  const injected: InjectedFault[] = []
  const sockets = new Set<Socket>()
  const timers = new Set<NodeJS.Timeout>()
  let dataRequests = 0
  let enabled = true
  let proxyUrl = ''

  const later = (ms: number, fn: () => void): void => {
    const timer = setTimeout(() => {
      timers.delete(timer)
      fn()
    }, ms)
    timers.add(timer)
  }

  const server = http.createServer((req, res) => {
    void (async () => {
      const path = new URL(req.url ?? '/', 'http://proxy').pathname
      const method = req.method ?? 'GET'
      const body = await readAll(req)
      let kind: FaultKind | undefined
      if (isData(method, path)) {
        dataRequests += 1
        const chosen = options.every
          ? (dataRequests - 1) % options.every === 0
          : random() < options.share
        if (enabled && chosen) {
          kind = kinds[injected.length % kinds.length]!
          injected.push({ kind, method, path })
        }
      }
      switch (kind) {
        case 'reset':
          req.socket.resetAndDestroy()
          return
        case 'maintenance':
          return send(res, 503, 'text/html; charset=utf-8', MAINTENANCE_PAGE)
        case 'server_error':
          return send(res, 500, 'application/json;charset=UTF-8', UNKNOWN_EXCEPTION)
        case 'expired_session':
          return send(res, 401, 'application/json;charset=UTF-8', INVALID_SESSION)
        case 'stall_headers':
          later(stallMs, () => req.socket.destroy())
          return
        default:
      }
      const answer = await forward(target, req, body)
      let payload = answer.body
      // Token answers name the instance: point the client back at the proxy, not past it.
      if (path === '/services/oauth2/token') {
        payload = Buffer.from(payload.toString('utf8').replaceAll(target, proxyUrl))
      }
      const headers = { ...answer.headers, 'content-length': String(payload.length) }
      delete headers['transfer-encoding']
      if (kind === 'cut_body' || kind === 'stall_body') {
        res.writeHead(answer.status, headers)
        res.write(payload.subarray(0, Math.floor(payload.length / 2)))
        if (kind === 'cut_body') later(20, () => req.socket.destroy())
        else later(stallMs, () => req.socket.destroy())
        return
      }
      res.writeHead(answer.status, headers)
      res.end(payload)
    })().catch(() => req.socket.destroy())
  })
  server.on('connection', (socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  proxyUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  return {
    url: proxyUrl,
    injected,
    get dataRequests() {
      return dataRequests
    },
    counts: () => {
      const counts: Partial<Record<FaultKind, number>> = {}
      for (const fault of injected) counts[fault.kind] = (counts[fault.kind] ?? 0) + 1
      return counts
    },
    setEnabled: (on) => {
      enabled = on
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        for (const timer of timers) clearTimeout(timer)
        for (const socket of sockets) socket.destroy()
        server.close((err) => (err ? reject(err) : resolve()))
      }),
  }
}

const MAINTENANCE_PAGE = `<!DOCTYPE html>
<html><head><title>Salesforce - Maintenance</title></head>
<body><h1>Down for maintenance</h1><p>This instance is undergoing scheduled maintenance. Please try again shortly.</p></body></html>`

const UNKNOWN_EXCEPTION = JSON.stringify([
  {
    errorCode: 'UNKNOWN_EXCEPTION',
    message:
      'An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-1234567890)',
  },
])

const INVALID_SESSION = JSON.stringify([
  { message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' },
])

function send(res: http.ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

/** The target's whole answer to the same request (the proxy needs the length to cut it). */
function forward(
  target: string,
  req: http.IncomingMessage,
  body: Buffer,
): Promise<{ status: number; headers: http.OutgoingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const headers = { ...req.headers }
    delete headers.host
    const upstream = http.request(
      new URL(req.url ?? '/', target),
      { method: req.method, headers, agent: false },
      (answer) => {
        readAll(answer).then(
          (data) =>
            resolve({
              status: answer.statusCode ?? 502,
              headers: { ...answer.headers },
              body: data,
            }),
          reject,
        )
      },
    )
    upstream.on('error', reject)
    upstream.end(body)
  })
}

async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

/** A small seeded PRNG (mulberry32): the same seed breaks the same requests. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
