/**
 * The HTTP transport a jsforce Connection uses, replaced by ours. jsforce 3's own transport
 * (node-fetch) waits for the headers only: a body cut off mid-stream leaves its promise pending
 * forever. It also retries GETs by itself (5xx, 429, resets), a second retry policy under ours.
 * This one sends every request jsforce makes through sendHttp, under the connection's deadlines
 * and the caller's signal, and turns transient answers (429, 5xx, HTML maintenance pages) into
 * retryable VendorErrors before jsforce reads them. It never retries: SalesforceSession does.
 */
import { PassThrough } from 'node:stream'
import type { Connection, HttpRequest, HttpResponse, StreamPromise } from 'jsforce'
import { bodyText, sendHttp, transientStatus, type Timeouts } from '../transport.js'

type JsforceTransport = Connection['_transport']

export function salesforceTransport(options: {
  timeouts: Partial<Timeouts>
  signal?: AbortSignal | undefined
}): JsforceTransport {
  return {
    httpRequest(req: HttpRequest): StreamPromise<HttpResponse> {
      // jsforce pipes this stream into the one it hands out; nothing of ours reads it. (jsforce's
      // StreamPromise class is not reachable from its ESM entry, so the method is attached.)
      const stream = new PassThrough()
      return Object.assign(send(req, options), { stream: () => stream })
    },
    getRequestStreamCreator() {
      throw new Error('The Salesforce transport sends whole requests; it has no stream creator.')
    },
  }
}

async function send(
  req: HttpRequest,
  options: { timeouts: Partial<Timeouts>; signal?: AbortSignal | undefined },
): Promise<HttpResponse> {
  const answer = await sendHttp({
    vendor: 'Salesforce',
    url: req.url,
    method: req.method,
    headers: req.headers,
    body: bodyOf(req),
    signal: options.signal,
    timeouts: options.timeouts,
  })
  const transient = transientStatus('Salesforce', answer)
  if (transient) throw transient
  return { statusCode: answer.status, headers: answer.headers, body: bodyText(answer.body) }
}

/** Our requests carry JSON or form text; jsforce's streaming bodies are not used. */
function bodyOf(req: HttpRequest): string | Buffer | undefined {
  const { body } = req
  if (body === undefined || body === null) return undefined
  if (typeof body === 'string' || Buffer.isBuffer(body)) return body
  if (body instanceof URLSearchParams) return body.toString()
  throw new Error(`The Salesforce transport cannot send a ${typeof body} request body.`)
}
