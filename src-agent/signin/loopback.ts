/**
 * The loopback redirect of a browser sign-in (RFC 8252 §7.3), for the CLI and the desktop app
 * alike: an HTTP listener on 127.0.0.1 that takes exactly one callback carrying the expected
 * `state`, answers the browser with a short page, and is closed whatever happens (callback,
 * refusal, timeout, abort). It never logs or echoes the query: it carries the authorization code.
 */
import { timingSafeEqual } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { AppError, ConfigError, VendorError } from '../../shared/errors.js'
import type { PendingSignIn, SignInCapability, SignInOptions } from '../connectors/interface.js'

/** The default redirect port. Salesforce matches callback URLs exactly, so it must be fixed. */
export const DEFAULT_REDIRECT_PORT = 17865
export const DEFAULT_REDIRECT_PATH = '/callback'
export const DEFAULT_SIGN_IN_TIMEOUT_MS = 5 * 60_000

export interface LoopbackOptions {
  /** The vendor's display name, for the browser page and messages ("Salesforce"). */
  vendor: string
  /** 0 takes any free port (tests; vendors that ignore the loopback port). */
  port?: number
  path?: string
  /** How long to wait for the callback. */
  timeoutMs?: number
  /** Stops waiting (Ctrl-C, a closed window): the wait rejects and the listener closes. */
  signal?: AbortSignal
  /** Where the admin changes the port, named when it is in use (default: the CLI's words). */
  portSetting?: string
}

export interface LoopbackListener {
  /** `http://127.0.0.1:<port><path>`: what the vendor must redirect to. */
  readonly redirectUri: string
  /**
   * The query parameters of the first callback, when its `state` is exactly `state`. A callback
   * with another or no `state` gets a 400 page and ends the sign-in with an error (nothing of it
   * is used). Rejects on timeout or abort too; the listener is closed once it settles.
   */
  waitForCallback(state: string): Promise<URLSearchParams>
  /** Stops listening and drops open connections; safe to call more than once. */
  close(): Promise<void>
}

/** Starts listening on 127.0.0.1; a port in use is a ConfigError that names it. */
export async function openLoopback(options: LoopbackOptions): Promise<LoopbackListener> {
  const path = options.path ?? DEFAULT_REDIRECT_PATH
  if (!path.startsWith('/')) {
    throw new ConfigError('config_invalid', `The redirect path "${path}" must start with "/".`)
  }
  const loopback = new Loopback(options.vendor, path)
  await loopback.listen(options.port ?? DEFAULT_REDIRECT_PORT, options.portSetting)
  return {
    redirectUri: loopback.redirectUri,
    waitForCallback: (state) => loopback.wait(state, options),
    close: () => loopback.close(),
  }
}

/**
 * A whole sign-in: listen, `begin`, hand the URL to `open` (print it, start a browser), wait for
 * the callback, close the listener, `complete`. Returns the connector's config, tokens included.
 */
export async function signInThroughLoopback<Config, SignInConfig>(
  signIn: SignInCapability<Config, SignInConfig>,
  config: SignInConfig,
  options: LoopbackOptions & {
    /** Shows the vendor's page: `url` to open, `redirectUri` the callback it will come back to. */
    open: (url: string, redirectUri: string) => void | Promise<void>
    complete?: SignInOptions
  },
): Promise<Config> {
  const listener = await openLoopback(options)
  try {
    const pending: PendingSignIn = signIn.begin(config, { redirectUri: listener.redirectUri })
    const callback = listener.waitForCallback(pending.state)
    // Handled below; this keeps a rejection while `open` runs from counting as unhandled.
    callback.catch(() => undefined)
    await options.open(pending.url, listener.redirectUri)
    const params = await callback
    await listener.close()
    return await signIn.complete(config, pending, params, options.complete)
  } finally {
    await listener.close()
  }
}

// --- implementation ---

class Loopback {
  readonly #server = http.createServer((req, res) => this.#handle(req, res))
  readonly #vendor: string
  readonly #path: string
  #port = 0
  #closed: Promise<void> | undefined
  /** Set while waiting: the expected state and how to end the wait. */
  #waiter:
    | {
        state: Buffer
        resolve: (params: URLSearchParams) => void
        reject: (err: Error) => void
      }
    | undefined
  #done = false

  constructor(vendor: string, path: string) {
    this.#vendor = vendor
    this.#path = path
  }

  get redirectUri(): string {
    return `http://127.0.0.1:${this.#port}${this.#path}`
  }

  async listen(
    port: number,
    portSetting = 'the redirect port (--redirect-port, or redirectPort in the config file)',
  ): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject)
      // Only the loopback interface: nothing else on the network can reach the callback.
      this.#server.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
        this.#server.off('error', reject)
        resolve()
      })
    }).catch((cause: unknown) => {
      const code = (cause as NodeJS.ErrnoException).code
      const why =
        code === 'EADDRINUSE'
          ? 'is in use'
          : code === 'EACCES'
            ? 'may not be used by this user'
            : `cannot be opened (${code ?? String(cause)})`
      throw new ConfigError(
        'config_invalid',
        `Port ${port} on 127.0.0.1 ${why}, so the ${this.#vendor} sign-in cannot receive its callback there. Free it, or change ${portSetting} and register its callback URL with ${this.#vendor}.`,
        { cause },
      )
    })
    this.#port = (this.#server.address() as AddressInfo).port
  }

  wait(state: string, options: LoopbackOptions): Promise<URLSearchParams> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_SIGN_IN_TIMEOUT_MS
    return new Promise<URLSearchParams>((resolve, reject) => {
      if (this.#waiter || this.#done || this.#closed) {
        reject(new AppError('internal', 'This sign-in listener is already used.'))
        return
      }
      const end = (settle: () => void): void => {
        clearTimeout(timer)
        options.signal?.removeEventListener('abort', onAbort)
        this.#waiter = undefined
        settle()
        // After the page has been written (see #answer) or at once: nothing waits any more.
        void this.close()
      }
      const onAbort = (): void =>
        end(() =>
          reject(
            new VendorError('vendor_auth_failed', `The ${this.#vendor} sign-in was cancelled.`, {
              cause: options.signal?.reason,
            }),
          ),
        )
      const timer = setTimeout(
        () =>
          end(() =>
            reject(
              new VendorError(
                'vendor_auth_failed',
                `No ${this.#vendor} sign-in reached ${this.redirectUri} within ${describeMs(timeoutMs)}. Start the sign-in again and finish it in the browser.`,
              ),
            ),
          ),
        timeoutMs,
      )
      if (options.signal?.aborted) return onAbort()
      options.signal?.addEventListener('abort', onAbort, { once: true })
      this.#waiter = {
        state: Buffer.from(state),
        resolve: (params) => end(() => resolve(params)),
        reject: (err) => end(() => reject(err)),
      }
    })
  }

  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      this.#server.close(() => resolve())
      // Idle keep-alive sockets would hold close() open; a page being written gets a moment to
      // finish, then whatever a browser still holds open (a half-sent request) is cut.
      this.#server.closeIdleConnections()
      setTimeout(() => this.#server.closeAllConnections(), 1000).unref()
    })
    return this.#closed
  }

  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    if (url.pathname !== this.#path) return this.#answer(res, 404, 'Not found', 'Nothing here.')
    if (req.method !== 'GET') return this.#answer(res, 405, 'Not allowed', 'Only GET is accepted.')
    const waiter = this.#waiter
    if (this.#done || !waiter) {
      return this.#answer(
        res,
        409,
        'Sign-in already handled',
        `This ${this.#vendor} sign-in is already finished or was never started here. You can close this window.`,
      )
    }
    const params = url.searchParams
    this.#done = true
    if (!sameState(params.get('state'), waiter.state)) {
      // Never accepted (RFC 6749 §10.12): an answer to another sign-in, an old tab or a forged
      // request. The sign-in ends, so the admin starts a fresh one rather than wonder.
      this.#answer(
        res,
        400,
        'Sign-in not accepted',
        `This answer does not belong to the ${this.#vendor} sign-in in progress, so it was refused. Start the sign-in again from the app or command that opened this window.`,
      )
      waiter.reject(
        new VendorError(
          'vendor_auth_failed',
          `An answer reached ${this.redirectUri} that does not belong to this ${this.#vendor} sign-in (its state does not match), so it was refused and nothing was stored. Start the sign-in again.`,
        ),
      )
      return
    }
    const error = params.get('error')
    if (error) {
      const reason = params.get('error_description') ?? error
      this.#answer(
        res,
        200,
        `${this.#vendor} sign-in refused`,
        `${this.#vendor} did not grant access: ${reason.slice(0, 300)}. You can close this window.`,
      )
    } else {
      this.#answer(
        res,
        200,
        `Signed in to ${this.#vendor}`,
        `${this.#vendor} sign-in received. You can close this window and go back to GTM Clarity.`,
      )
    }
    waiter.resolve(params)
  }

  #answer(res: http.ServerResponse, status: number, title: string, text: string): void {
    const page =
      `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>` +
      `<body style="font-family:system-ui,sans-serif;margin:3rem"><h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p></body></html>`
    res.writeHead(status, {
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
      'referrer-policy': 'no-referrer',
      'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
      // One request per connection, so closing the listener leaves nothing open.
      connection: 'close',
    })
    res.end(page)
  }
}

/** Exact comparison in constant time: the state is the callback's only proof of origin. */
function sameState(received: string | null, expected: Buffer): boolean {
  if (received === null) return false
  const got = Buffer.from(received)
  return got.length === expected.length && timingSafeEqual(got, expected)
}

function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  )
}

/** "5 minutes", "30 s": a wait as people say it. */
export function describeMs(ms: number): string {
  if (ms % 60_000 === 0) return `${ms / 60_000} minute${ms === 60_000 ? '' : 's'}`
  if (ms % 1000 === 0) return `${ms / 1000} s`
  return `${ms} ms`
}
