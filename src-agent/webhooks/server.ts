/**
 * The webhook receiver: `POST /webhooks/<connector type>/<tenant id>`. A request is checked in
 * this order: the connector type (404), the body size (413, not read past the limit), the
 * tenant's connection (404), the signature (401), the body (400); its events are then stored in
 * the inbox, and only then answered 202 (200 when every event was there already).
 */
import http from 'node:http'
import type { Db } from '../../db/client.js'
import { withTenant } from '../../db/tenant.js'
import { AppError, describeError } from '../../shared/errors.js'
import { sourceRecordSchema } from '../../shared/schemas.js'
import type { WebhookEvent, WebhookRequest } from '../connectors/interface.js'
import type { ConnectorRegistry } from '../connectors/registry.js'
import type { Logger } from '../logging/logger.js'
import { openConnectorConnection } from '../pipeline/connection.js'
import { boundedMessage } from '../pipeline/storable.js'
import type { Keyring } from '../secrets/crypto.js'
import { listen } from '../telemetry/listen.js'
import { webhookEventsTotal } from '../telemetry/metrics.js'
import { storeEvents } from './inbox.js'

/** The longest event id kept; a longer one is refused as malformed. */
const MAX_EVENT_ID_LENGTH = 255

/** How long, and how many bytes, the rest of an oversized body is read and thrown away. */
const LINGER_MS = 2_000
const LINGER_BYTES = 1024 * 1024

/** A sender that takes longer than this over one request is cut off. */
const REQUEST_TIMEOUT_MS = 30_000

export interface WebhookServerDeps {
  db: Db
  keyring: Keyring
  registry: ConnectorRegistry
  log: Logger
  /** Called after new events of the tenant were stored (to process them). */
  onStored?: (tenantId: string) => void
  /** The clock signatures' timestamps are checked against; tests pass their own. */
  now?: () => Date
}

export interface WebhookServer {
  /** `http://host:port` */
  url: string
  port: number
  /** Stops accepting requests and waits for those in progress. */
  close(): Promise<void>
}

/** Listens on `host` (default 127.0.0.1) and `port` (0: any free one). */
export async function startWebhookServer(
  deps: WebhookServerDeps,
  options: { port: number; host?: string },
): Promise<WebhookServer> {
  const host = options.host ?? '127.0.0.1'
  const log = deps.log.child({ component: 'webhooks' })
  const server = http.createServer((req, res) => {
    receive(deps, log, req, res).catch((err: unknown) => {
      log.error({ error: describeError(err) }, 'webhook request failed')
      if (!res.headersSent) send(res, 500, { error: 'internal error' })
    })
  })
  server.requestTimeout = REQUEST_TIMEOUT_MS
  return listen(server, options.port, host)
}

/** What the request log line says about one request: never a header or the body. */
interface RequestNote {
  status: number
  connector?: string
  tenantId?: string
  events?: number
  duplicates?: number
  reason?: string
}

async function receive(
  deps: WebhookServerDeps,
  log: Logger,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  const receivedAt = deps.now?.() ?? new Date()
  const note = await answer(deps, req, res, receivedAt)
  log.info(note, 'webhook request')
  countRequest(deps, note)
}

/** Answers given before the tenant's connection was found: their path segments are the caller's. */
const BEFORE_CONNECTION = new Set([404, 405, 413])

/**
 * A request on the metrics: its events received and duplicates, or one refused request. Labels
 * take only a registered connector type and, once its connection was found, the tenant id, so
 * a caller cannot make up label values.
 */
function countRequest(deps: WebhookServerDeps, note: RequestNote): void {
  const known = note.connector !== undefined && deps.registry.has(note.connector)
  const labels = {
    connector: known ? note.connector! : 'unknown',
    tenant: known && !BEFORE_CONNECTION.has(note.status) ? (note.tenantId ?? '') : '',
  }
  if (note.status >= 400) {
    webhookEventsTotal.inc({ ...labels, outcome: 'refused' })
    return
  }
  const duplicates = note.duplicates ?? 0
  const received = (note.events ?? 0) - duplicates
  if (received > 0) webhookEventsTotal.inc({ ...labels, outcome: 'received' }, received)
  if (duplicates > 0) webhookEventsTotal.inc({ ...labels, outcome: 'duplicate' }, duplicates)
}

async function answer(
  deps: WebhookServerDeps,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  receivedAt: Date,
): Promise<RequestNote> {
  const reply = (
    status: number,
    body: Record<string, unknown>,
    note: Omit<RequestNote, 'status'> = {},
  ) => {
    send(res, status, body)
    return { status, ...note }
  }
  const route = parseRoute(req.url ?? '/')
  if (!route) return reply(404, { error: 'not found' })
  const where = { connector: clip(route.type), tenantId: clip(route.tenantId) }
  if (req.method !== 'POST') {
    res.setHeader('allow', 'POST')
    return reply(405, { error: 'use POST' }, where)
  }
  const hooks = deps.registry.has(route.type) ? deps.registry.get(route.type).webhooks : undefined
  if (!hooks) return reply(404, { error: 'not found' }, where)

  const rawBody = await readBody(req, hooks.maxBodyBytes)
  if (rawBody === undefined) {
    await discardRest(req, res)
    return reply(413, { error: `the body is larger than ${hooks.maxBodyBytes} bytes` }, where)
  }

  const connection = await findConnection(deps, route)
  // One answer for an unknown tenant and for a tenant without this connection.
  if (!connection) return reply(404, { error: 'not found' }, where)

  const request: WebhookRequest = { headers: flatHeaders(req.headers), rawBody, receivedAt }
  const verdict = hooks.verify(request, connection.credentials)
  if (!verdict.ok) {
    // The sender learns only that it was refused; the log says why.
    const error = verdict.status === 401 ? 'invalid signature' : boundedMessage(verdict.reason, 200)
    return reply(
      verdict.status,
      { error },
      { ...where, reason: boundedMessage(verdict.reason, 200) },
    )
  }

  const parsed = hooks.parse(rawBody, request.headers)
  const problem = parsed.ok ? checkEvents(parsed.events) : parsed.reason
  if (!parsed.ok || problem) {
    const reason = boundedMessage(problem ?? 'malformed body', 200)
    return reply(400, { error: reason }, { ...where, reason })
  }
  const events = parsed.events
  const stored = await withTenant(deps.db, route.tenantId, (tx) =>
    storeEvents(tx, {
      tenantId: route.tenantId,
      connectorId: connection.connectorId,
      source: route.type,
      events,
    }),
  )
  if (stored.stored > 0) deps.onStored?.(route.tenantId)
  return reply(
    stored.stored > 0 ? 202 : 200,
    { received: events.length, duplicates: stored.duplicates },
    { ...where, events: events.length, duplicates: stored.duplicates },
  )
}

/** `/webhooks/<type>/<tenant>` (one trailing slash allowed), or undefined. */
function parseRoute(url: string): { type: string; tenantId: string } | undefined {
  const path = url.split('?', 1)[0]!
  const match = /^\/webhooks\/([^/]+)\/([^/]+)\/?$/.exec(path)
  if (!match) return undefined
  try {
    return { type: decodeURIComponent(match[1]!), tenantId: decodeURIComponent(match[2]!) }
  } catch {
    return undefined
  }
}

/**
 * The body, or undefined when it is longer than `limit`: a declared length says so before a byte
 * is read, and reading stops at the first byte past the limit.
 */
function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const declared = Number(req.headers['content-length'])
  if (Number.isFinite(declared) && declared > limit) return Promise.resolve(undefined)
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer): void => {
      size += chunk.length
      if (size > limit) {
        req.off('data', onData)
        req.pause()
        resolve(undefined)
        return
      }
      chunks.push(chunk)
    }
    req.on('data', onData)
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

/**
 * After a 413: what the sender still sends is read and thrown away, up to LINGER_BYTES and for
 * LINGER_MS, so that a sender that writes its whole body before reading can read the answer;
 * past that the connection is cut once the answer is out. It is closed either way.
 */
async function discardRest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  res.setHeader('connection', 'close')
  const declared = Number(req.headers['content-length'])
  const drained =
    Number.isFinite(declared) && declared > LINGER_BYTES
      ? false
      : await new Promise<boolean>((resolve) => {
          let discarded = 0
          const done = (all: boolean): void => {
            clearTimeout(timer)
            resolve(all)
          }
          const timer = setTimeout(() => done(false), LINGER_MS)
          req.on('data', (chunk: Buffer) => {
            discarded += chunk.length
            if (discarded > LINGER_BYTES) done(false)
          })
          req.on('end', () => done(true))
          req.on('error', () => done(false))
          req.resume()
        })
  if (!drained) {
    req.pause()
    res.on('finish', () => req.socket.destroy())
  }
}

/** The tenant's connection of the type with its credentials, or undefined when there is none. */
async function findConnection(
  deps: WebhookServerDeps,
  route: { type: string; tenantId: string },
): Promise<{ connectorId: string; credentials: Record<string, unknown> } | undefined> {
  const connector = deps.registry.get(route.type)
  try {
    return await withTenant(deps.db, route.tenantId, async (tx) => {
      const opened = await openConnectorConnection(tx, deps.keyring, route.tenantId, connector)
      return { connectorId: opened.row.id, credentials: opened.credentials }
    })
  } catch (err) {
    // Not a tenant id, or no such connection (RLS hides other tenants' rows alike).
    if (
      err instanceof AppError &&
      ['tenant_required', 'connector_not_connected'].includes(err.code)
    ) {
      return undefined
    }
    throw err
  }
}

/** Why the connector's events cannot be stored, or undefined when they can. */
function checkEvents(events: readonly WebhookEvent[]): string | undefined {
  for (const [index, event] of events.entries()) {
    const at = events.length > 1 ? `event ${index + 1}: ` : ''
    if (typeof event.eventId !== 'string' || event.eventId === '') return `${at}the event has no id`
    if (event.eventId.length > MAX_EVENT_ID_LENGTH) return `${at}the event id is too long`
    if (typeof event.type !== 'string' || event.type === '') return `${at}the event has no type`
    const bad = event.records.findIndex((r) => !sourceRecordSchema.safeParse(r).success)
    if (bad >= 0) return `${at}record ${bad + 1} is not a record`
  }
  return undefined
}

function flatHeaders(headers: http.IncomingHttpHeaders): Record<string, string | undefined> {
  const flat: Record<string, string | undefined> = {}
  for (const [name, value] of Object.entries(headers)) {
    flat[name] = Array.isArray(value) ? value.join(', ') : value
  }
  return flat
}

function send(res: http.ServerResponse, status: number, body: Record<string, unknown>): void {
  res.writeHead(status, { 'content-type': 'application/json' })
  res.end(JSON.stringify(body))
}

/** A caller-chosen path segment, short enough for a log line. */
function clip(text: string): string {
  return text.length > 100 ? `${text.slice(0, 99)}…` : text
}
