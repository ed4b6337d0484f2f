/**
 * One HTTP exchange with a vendor under three deadlines: connecting, silence between bytes
 * (waiting for the headers and reading the body alike) and the whole exchange. Each is a timer
 * that aborts the exchange's AbortSignal. The body is read to its end: a body that ends early (a
 * socket closed mid-body, fewer bytes than Content-Length, a chunked body without its last chunk)
 * is a retryable VendorError, never a promise left pending. No retries here: see retry.ts.
 */
import { isAscii } from 'node:buffer'
import http from 'node:http'
import https from 'node:https'
import type { Socket } from 'node:net'
import { promisify } from 'node:util'
import zlib from 'node:zlib'
import { VendorError } from '../../shared/errors.js'
import { retryAfterMs } from './retry.js'

export interface Timeouts {
  /** Until the connection (DNS, TCP, TLS) is up. */
  connectTimeoutMs: number
  /** Longest silence: before the headers arrive and between any two chunks of the body. */
  idleTimeoutMs: number
  /** The whole exchange, from the first byte sent to the last byte read. */
  requestTimeoutMs: number
}

export const DEFAULT_TIMEOUTS: Timeouts = {
  connectTimeoutMs: 10_000,
  idleTimeoutMs: 60_000,
  requestTimeoutMs: 5 * 60_000,
}

export interface HttpCall {
  /** The vendor's display name, for messages. */
  vendor: string
  url: string
  method?: string | undefined
  headers?: Record<string, string> | undefined
  body?: string | Buffer | undefined
  /** The caller's cancellation: rejects with its reason, which is never a VendorError. */
  signal?: AbortSignal | undefined
  timeouts?: Partial<Timeouts> | undefined
  /** The agent that opens connections (a proxy's, or a test's); Node's global one by default. */
  agent?: http.Agent | undefined
}

export interface HttpAnswer {
  status: number
  /** Lower-case names; repeated headers joined with ", ". */
  headers: Record<string, string>
  /** The whole body, decompressed. */
  body: Buffer
}

/**
 * Why an exchange failed (the cause of the VendorError it becomes): a stable snake_case
 * `reason` to count by (`idle_timeout`, `cut_body`, `http_503`, `connection_reset`) and a
 * `detail` for people (`500 ms`, `512 of 1024 bytes`, `HTML page`, `ECONNRESET`).
 */
export class TransportFailure extends Error {
  readonly reason: string
  readonly detail: string | undefined

  constructor(reason: string, detail?: string) {
    super(detail ? `${reason} (${detail})` : reason)
    this.name = 'TransportFailure'
    this.reason = reason
    this.detail = detail
  }
}

/**
 * Sends one request and reads its whole answer within the deadlines. Network failures, timeouts
 * and cut bodies throw a retryable 'vendor_unavailable'; any HTTP status is returned as is.
 */
export function sendHttp(call: HttpCall): Promise<HttpAnswer> {
  call.signal?.throwIfAborted()
  const url = new URL(call.url)
  const secure = url.protocol === 'https:'
  const deadlines = new Deadlines({ ...DEFAULT_TIMEOUTS, ...call.timeouts }, call.signal)
  return new Promise<HttpAnswer>((resolve, reject) => {
    const settle = (outcome: { answer: HttpAnswer } | { error: Error }): void => {
      if (!deadlines.clear()) return
      if ('answer' in outcome) return resolve(outcome.answer)
      req.destroy()
      reject(outcome.error)
    }
    const req = (secure ? https : http).request(
      url,
      {
        method: call.method ?? 'GET',
        headers: { 'accept-encoding': 'gzip, deflate', ...call.headers },
        ...(call.agent ? { agent: call.agent } : {}),
      },
      (res) => {
        deadlines.touch()
        readAnswer(res, () => deadlines.touch()).then(
          (answer) => settle({ answer }),
          (failure: TransportFailure) => settle({ error: failed(call, failure) }),
        )
      },
    )
    req.on('socket', (socket) => deadlines.connecting(socket, secure))
    req.on('error', (err) => settle({ error: failed(call, networkFailure(err)) }))
    deadlines.onExpiry((reason) =>
      settle({ error: reason instanceof TransportFailure ? failed(call, reason) : reason }),
    )
    req.end(call.body)
  })
}

/**
 * A transient failure told by the status alone: 429 (with the wait the vendor asked for), any
 * 5xx, or an HTML page where an API answer belongs (a maintenance or outage page). Undefined for
 * anything else, which the caller classifies.
 */
export function transientStatus(vendor: string, answer: HttpAnswer): VendorError | undefined {
  const { status, headers } = answer
  const html = /^text\/html/i.test(headers['content-type'] ?? '')
  if (status === 429) {
    const wait = retryAfterMs(headers)
    return new VendorError('vendor_rate_limited', `${vendor} is throttling requests (HTTP 429).`, {
      cause: new TransportFailure('http_429'),
      retryable: true,
      ...(wait === undefined ? {} : { retryAfterMs: wait }),
    })
  }
  if (status >= 500) {
    const code = html ? 'HTML page' : errorCodeOf(answer.body)
    return new VendorError(
      'vendor_unavailable',
      `${vendor} answered HTTP ${status}; it will be retried.`,
      {
        cause: new TransportFailure(`http_${status}`, code),
        retryable: true,
      },
    )
  }
  if (html && status >= 200 && status < 300) {
    return new VendorError(
      'vendor_unavailable',
      `${vendor} answered with an HTML page instead of data (maintenance or an outage); it will be retried.`,
      { cause: new TransportFailure(`http_${status}`, 'HTML page'), retryable: true },
    )
  }
  return undefined
}

// --- implementation ---

/**
 * The three deadlines of one exchange: timers that abort its AbortSignal (joined with the
 * caller's) with a TransportFailure saying which one ran out.
 */
class Deadlines {
  readonly #limits: Timeouts
  readonly #caller: AbortSignal | undefined
  readonly #expiry = new AbortController()
  readonly #signal: AbortSignal
  readonly #overall: NodeJS.Timeout
  #idle: NodeJS.Timeout | undefined
  #connect: NodeJS.Timeout | undefined
  #onAbort: (() => void) | undefined
  #cleared = false

  constructor(limits: Timeouts, caller: AbortSignal | undefined) {
    this.#limits = limits
    this.#caller = caller
    this.#signal = caller ? AbortSignal.any([caller, this.#expiry.signal]) : this.#expiry.signal
    this.#overall = setTimeout(
      this.#expire('request_timeout', limits.requestTimeoutMs),
      limits.requestTimeoutMs,
    )
    this.touch()
  }

  /** Calls `fn` once when a deadline runs out (a TransportFailure) or the caller cancels (its reason). */
  onExpiry(fn: (reason: Error) => void): void {
    this.#onAbort = () =>
      fn(this.#caller?.aborted ? reasonOf(this.#caller) : (this.#expiry.signal.reason as Error))
    this.#signal.addEventListener('abort', this.#onAbort, { once: true })
  }

  /** Bytes arrived: the idle deadline starts again. */
  touch(): void {
    clearTimeout(this.#idle)
    this.#idle = setTimeout(
      this.#expire('idle_timeout', this.#limits.idleTimeoutMs),
      this.#limits.idleTimeoutMs,
    )
  }

  /** A new socket: it must connect (TLS included) within the connect deadline. */
  connecting(socket: Socket, secure: boolean): void {
    if (!socket.connecting) return
    this.#connect = setTimeout(
      this.#expire('connect_timeout', this.#limits.connectTimeoutMs),
      this.#limits.connectTimeoutMs,
    )
    socket.once(secure ? 'secureConnect' : 'connect', () => clearTimeout(this.#connect))
  }

  /** Stops every timer; false when they were already stopped (the exchange is settled). */
  clear(): boolean {
    if (this.#cleared) return false
    this.#cleared = true
    clearTimeout(this.#overall)
    clearTimeout(this.#idle)
    clearTimeout(this.#connect)
    if (this.#onAbort) this.#signal.removeEventListener('abort', this.#onAbort)
    return true
  }

  #expire(reason: string, ms: number): () => void {
    return () => {
      if (!this.#cleared) this.#expiry.abort(new TransportFailure(reason, seconds(ms)))
    }
  }
}

/**
 * Reads a response to its end, calling `onData` on each chunk. Rejects with a TransportFailure
 * when the body ends early (the socket closed before the message was complete) or cannot be
 * decoded.
 */
function readAnswer(res: http.IncomingMessage, onData: () => void): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let received = 0
    const expected = Number(res.headers['content-length'] ?? Number.NaN)
    // A body of known length is copied into one buffer as it arrives, so that each chunk is
    // garbage at once, not kept to the end and copied again (a page held twice, and for long
    // enough that its chunks outlive young-generation collections).
    // Should more arrive than announced, what it holds becomes the first chunk.
    let whole =
      Number.isSafeInteger(expected) && expected > 0 && expected <= PREALLOCATED_BODY_MAX
        ? Buffer.allocUnsafe(expected)
        : undefined
    const cut = (): void => reject(cutBody(received, expected, res.headers))
    res.on('data', (chunk: Buffer) => {
      if (whole && received + chunk.length <= whole.length) {
        chunk.copy(whole, received)
      } else {
        if (whole) chunks.push(whole.subarray(0, received))
        whole = undefined
        chunks.push(chunk)
      }
      received += chunk.length
      onData()
    })
    res.on('error', cut)
    res.on('close', () => {
      if (!res.complete) cut()
    })
    res.on('end', () => {
      if (!res.complete) return cut()
      const body = whole ? whole.subarray(0, received) : Buffer.concat(chunks)
      decode(body, res.headers['content-encoding']).then(
        (body) => resolve({ status: res.statusCode ?? 0, headers: flat(res.headers), body }),
        cut,
      )
    })
  })
}

/** The largest Content-Length taken as given to size a body's buffer up front. */
const PREALLOCATED_BODY_MAX = 64 * 2 ** 20

/** The VendorError an exchange that broke becomes; its cause says why. */
function failed(call: HttpCall, failure: unknown): VendorError {
  const cause =
    failure instanceof TransportFailure ? failure : new TransportFailure('network_error')
  const template = MESSAGES[cause.reason] ?? 'could not be reached (%s)'
  return new VendorError(
    'vendor_unavailable',
    `${call.vendor} ${template.replace('%s', cause.detail ?? cause.reason)}.`,
    { cause, retryable: true },
  )
}

const MESSAGES: Record<string, string> = {
  connect_timeout: 'could not be reached: no connection within %s',
  idle_timeout: 'sent nothing for %s (idle timeout)',
  request_timeout: 'did not finish answering within %s (request timeout)',
  cut_body: 'cut its answer off after %s',
  connection_reset: 'closed the connection mid-request (%s)',
}

/** A socket error as a reason: resets, refusals and name lookups apart, by their code. */
function networkFailure(err: Error): TransportFailure {
  const code = (err as { code?: unknown }).code
  if (typeof code !== 'string') return new TransportFailure('network_error', err.message)
  const reason =
    code === 'ECONNRESET' || code === 'EPIPE'
      ? 'connection_reset'
      : code === 'ECONNREFUSED'
        ? 'connection_refused'
        : code === 'ENOTFOUND' || code === 'EAI_AGAIN'
          ? 'dns_failure'
          : 'network_error'
  return new TransportFailure(reason, code)
}

function cutBody(
  received: number,
  expected: number,
  headers: http.IncomingHttpHeaders,
): TransportFailure {
  const of = Number.isFinite(expected)
    ? `${received} of ${expected} bytes`
    : `${received} bytes${headers['transfer-encoding'] === 'chunked' ? ' without the last chunk' : ''}`
  return new TransportFailure('cut_body', of)
}

const gunzip = promisify(zlib.gunzip)
const inflate = promisify(zlib.inflate)
const brotli = promisify(zlib.brotliDecompress)

async function decode(body: Buffer, encoding: string | undefined): Promise<Buffer> {
  // A 204 or a HEAD answer can name an encoding and carry nothing to decode.
  if (body.length === 0) return body
  switch (encoding?.trim().toLowerCase()) {
    case 'gzip':
    case 'x-gzip':
      return gunzip(body)
    case 'deflate':
      return inflate(body)
    case 'br':
      return brotli(body)
    default:
      return body
  }
}

function flat(headers: http.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value
  }
  return out
}

/**
 * A response body as text, read as UTF-8. A body of ASCII bytes only (a page of records without
 * one accented letter, say) is the same text read byte for byte, copied straight into a string:
 * Node's UTF-8 decoder took 12 ms for 4 MB of such a body here, the check and the copy 0.3 ms.
 */
export function bodyText(body: Buffer): string {
  return isAscii(body) ? body.toString('latin1') : body.toString('utf8')
}

/** A Salesforce-style error code (`[{"errorCode": …}]` or `{"error": …}`) from a body, if any. */
function errorCodeOf(body: Buffer): string | undefined {
  if (body.length > 64 * 1024) return undefined
  try {
    const parsed = JSON.parse(bodyText(body)) as unknown
    const first = (Array.isArray(parsed) ? parsed[0] : parsed) as
      { errorCode?: unknown; error?: unknown } | undefined
    const code = first?.errorCode ?? first?.error
    return typeof code === 'string' && /^[A-Za-z_]{1,64}$/.test(code) ? code : undefined
  } catch {
    return undefined
  }
}

/** The caller's cancellation, as thrown by `signal.throwIfAborted()`. */
function reasonOf(signal: AbortSignal): Error {
  const reason: unknown = signal.reason
  return reason instanceof Error ? reason : new Error(String(reason))
}

function seconds(ms: number): string {
  return ms < 1_000 ? `${ms} ms` : `${Math.round(ms / 100) / 10} s`
}
