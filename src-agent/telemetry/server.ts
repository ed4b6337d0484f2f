/**
 * The operations endpoint of a long-running agent (`worker --metrics-port`): `GET /metrics`
 * (Prometheus text), `GET /healthz` (the process is up) and `GET /readyz` (every readiness check
 * passes; 503 naming the ones that failed). Answers GET and HEAD only, no request body, nothing
 * else; it never carries a secret.
 */
import http from 'node:http'
import type { Registry } from 'prom-client'
import type { Logger } from '../logging/logger.js'
import { listen } from './listen.js'

/** One readiness check: ok, or the reason it failed, in words. */
export interface CheckResult {
  ok: boolean
  error?: string
}

export interface ReadinessReport {
  ready: boolean
  /** Check name → result, in a stable order (database, migrations, temporal, worker). */
  checks: Record<string, CheckResult>
}

export interface OpsServerOptions {
  port: number
  /** Default 127.0.0.1: metrics and health are for this machine unless told otherwise. */
  host?: string
  registry: Registry
  ready: () => Promise<ReadinessReport>
  version: string
  log: Logger
}

export interface OpsServer {
  /** `http://host:port` */
  url: string
  port: number
  close(): Promise<void>
}

/** Starts listening; rejects when the port cannot be bound (in use, not allowed). */
export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const host = options.host ?? '127.0.0.1'
  const started = Date.now()
  const server = http.createServer((req, res) => {
    route(options, started, req, res).catch((err: unknown) => {
      options.log.warn(
        { path: pathOf(req), error: err instanceof Error ? err.message : String(err) },
        'operations request failed',
      )
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' })
      else res.destroy()
    })
  })
  server.requestTimeout = 30_000
  return listen(server, options.port, host, { dropBusy: true })
}

// --- implementation ---

async function route(
  options: OpsServerOptions,
  started: number,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const path = pathOf(req)
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD')
    sendJson(res, 405, { error: 'use GET' })
    return
  }
  switch (path) {
    case '/metrics': {
      const body = await options.registry.metrics()
      res.writeHead(200, { 'content-type': options.registry.contentType })
      res.end(req.method === 'HEAD' ? undefined : body)
      return
    }
    case '/healthz':
      sendJson(res, 200, {
        status: 'up',
        version: options.version,
        uptimeSeconds: Math.round((Date.now() - started) / 1000),
      })
      return
    case '/readyz': {
      const report = await options.ready()
      const failed = Object.entries(report.checks)
        .filter(([, check]) => !check.ok)
        .map(([name]) => name)
      sendJson(res, report.ready ? 200 : 503, {
        status: report.ready ? 'ready' : 'unready',
        failed,
        checks: report.checks,
      })
      return
    }
    default:
      sendJson(res, 404, { error: 'not found: use /metrics, /healthz or /readyz' })
  }
}

function pathOf(req: http.IncomingMessage): string {
  return (req.url ?? '/').split('?', 1)[0]!
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' })
  res.end(JSON.stringify(body))
}
