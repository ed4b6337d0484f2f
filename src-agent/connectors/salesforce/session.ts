/**
 * One authenticated jsforce Connection per connector call. Every request goes through our
 * transport (deadlines, see transport.ts) and the one retry policy (../retry.ts): transient
 * failures are retried with backoff, and a 401 refreshes the session once, at most once per
 * connection at a time: across processes through the pipeline's credential lock, within a
 * process through a shared promise.
 */
import { Connection, type HttpRequest } from 'jsforce'
import { AppError, VendorError } from '../../../shared/errors.js'
import type { Credentials } from '../interface.js'
import type { Logger } from '../../logging/logger.js'
import { recordApiQuota, type CallLabels } from '../../telemetry/metrics.js'
import { SessionExpiredError, withRetry, type RetryEvent } from '../retry.js'
import { sendHttp, type Timeouts } from '../transport.js'
import { refreshTokens } from './auth.js'
import { TRANSIENT, salesforceError, toVendorError } from './errors.js'
import { salesforceConfigSchema, type SalesforceCredentials } from './schemas.js'
import { salesforceTransport } from './transport.js'

export interface SessionOptions {
  signal?: AbortSignal | undefined
  /** No retry, and no wait between requests, after it aborts (see CredentialOptions.stop). */
  stop?: AbortSignal | undefined
  log?: Logger | undefined
  /** Persists refreshed credentials. Without it the session never refreshes (see `canRefresh`). */
  onCredentialsChanged?: ((credentials: Credentials) => Promise<void>) | undefined
  credentialLock?: (<T>(fn: (latest: Credentials) => Promise<T>) => Promise<T>) | undefined
  /** Hears every retry (and session refresh) of every request of the session. */
  onRetry?: ((event: RetryEvent) => void) | undefined
  /** Who the session's calls are made for, on the vendor-call metrics (see CallLabels). */
  labels?: CallLabels | undefined
}

/** Options of one request: jsforce's (responseType, transport) plus a retry listener. */
export interface RequestOptions {
  /** How jsforce parses the body; 'text/plain' keeps it as text. */
  responseType?: string
  /** A transport wrapping the session's (to see the response headers). */
  transport?: Pick<Connection['_transport'], 'httpRequest'>
  onRetry?: (event: RetryEvent) => void
}

/** Refreshes in flight in this process, by refresh token. */
const inflight = new Map<string, Promise<SalesforceCredentials>>()

export class SalesforceSession {
  readonly conn: Connection
  readonly options: SessionOptions
  #credentials: SalesforceCredentials
  #authFailure: VendorError | undefined
  #renewing: Promise<void> | undefined

  constructor(credentials: SalesforceCredentials, options: SessionOptions = {}) {
    this.#credentials = credentials
    this.options = options
    // No refreshFn: a 401 reaches request(), which refreshes once under the retry policy.
    this.conn = new Connection({
      instanceUrl: credentials.instanceUrl,
      version: credentials.apiVersion,
      ...(credentials.accessToken ? { accessToken: credentials.accessToken } : {}),
    })
    this.conn._transport = salesforceTransport({
      timeouts: this.timeouts,
      signal: options.signal,
    })
  }

  /** The deadlines of every call of this session (the connection's config, or the defaults). */
  get timeouts(): Timeouts {
    const { connectTimeoutMs, idleTimeoutMs, requestTimeoutMs } = this.#credentials
    return { connectTimeoutMs, idleTimeoutMs, requestTimeoutMs }
  }

  /** The newest credentials this session knows (refreshed ones included). */
  get credentials(): SalesforceCredentials {
    return this.#credentials
  }

  /** Whether an expired access token can be refreshed: only when the new one can be persisted. */
  get canRefresh(): boolean {
    return this.options.onCredentialsChanged !== undefined
  }

  /** Why the last refresh failed (jsforce rewraps it into a plain Error). */
  get authFailure(): VendorError | undefined {
    return this.#authFailure
  }

  /** API usage from the latest Sforce-Limit-Info header, if any response carried one. */
  usage(): { used: number; max: number } | undefined {
    const usage = this.conn.limitInfo.apiUsage
    return usage && usage.limit > 0 ? { used: usage.used, max: usage.limit } : undefined
  }

  /**
   * A REST request through the connection (Sforce-Limit-Info read) under the deadlines and the
   * retry policy: transient failures are retried, an expired session is refreshed once (when the
   * new token can be stored), anything else is thrown as jsforce or our transport raised it.
   */
  async request<T = unknown>(
    request: string | HttpRequest,
    options: RequestOptions = {},
  ): Promise<T> {
    const { onRetry, ...httpOptions } = options
    let sentWith: string | undefined
    return withRetry(
      async () => {
        this.throwIfAborted()
        sentWith = this.conn.accessToken ?? undefined
        try {
          const answer = await this.conn.request<T>(request, httpOptions)
          const usage = this.usage()
          if (usage) recordApiQuota('Salesforce', usage, this.options.labels)
          return answer
        } catch (err) {
          throw classify(err)
        }
      },
      {
        vendor: 'Salesforce',
        what: describeCall(request),
        signal: this.options.signal,
        stop: this.options.stop,
        log: this.options.log,
        labels: this.options.labels,
        onRetry: (event) => {
          this.options.onRetry?.(event)
          onRetry?.(event)
        },
        ...(this.canRefresh ? { refreshSession: () => this.#renew(sentWith) } : {}),
      },
    )
  }

  /**
   * Salesforce's clock, in epoch ms: the `Date` header of the API versions list (which needs no
   * session). Undefined when it cannot be read.
   */
  async serverTime(): Promise<number | undefined> {
    const base = this.#credentials.instanceUrl.replace(/\/$/, '')
    try {
      const answer = await withRetry(
        () =>
          sendHttp({
            vendor: 'Salesforce',
            url: `${base}/services/data/`,
            signal: this.options.signal,
            timeouts: this.timeouts,
          }),
        {
          vendor: 'Salesforce',
          what: 'GET /services/data/',
          signal: this.options.signal,
          stop: this.options.stop,
          log: this.options.log,
          labels: this.options.labels,
          onRetry: this.options.onRetry,
        },
      )
      const date = Date.parse(answer.headers.date ?? '')
      return Number.isNaN(date) ? undefined : date
    } catch {
      this.throwIfAborted()
      return undefined
    }
  }

  throwIfAborted(): void {
    this.options.signal?.throwIfAborted()
  }

  /** After a 401: a new access token, unless another request of this session got one meanwhile. */
  async #renew(stale: string | undefined): Promise<void> {
    if (this.conn.accessToken && this.conn.accessToken !== stale) return
    this.#renewing ??= this.#refresh()
      .then((next) => {
        this.conn.accessToken = next.accessToken
        this.conn.instanceUrl = next.instanceUrl
      })
      .finally(() => {
        this.#renewing = undefined
      })
    await this.#renewing
  }

  async #refresh(): Promise<SalesforceCredentials> {
    const stale = this.#credentials.accessToken
    try {
      const lock = this.options.credentialLock
      const next = lock
        ? await lock((latest) => this.#refreshUnderLock(latest, stale))
        : await this.#refreshInProcess()
      this.#credentials = next
      this.options.log?.info({ instanceUrl: next.instanceUrl }, 'salesforce session refreshed')
      return next
    } catch (err) {
      if (err instanceof VendorError) this.#authFailure = err
      throw err
    }
  }

  /** Holding the connection's credential lock: adopt a token another process just stored, or refresh. */
  async #refreshUnderLock(
    latestStored: Credentials,
    stale: string | undefined,
  ): Promise<SalesforceCredentials> {
    const latest = parseStored(latestStored)
    const next =
      latest.accessToken && latest.accessToken !== stale ? latest : await this.#fetchTokens(latest)
    // Also when adopting: the caller's copy of the credentials must move on too.
    await this.options.onCredentialsChanged?.(next)
    return next
  }

  /** Without a lock: one refresh per refresh token in this process; each caller persists it. */
  async #refreshInProcess(): Promise<SalesforceCredentials> {
    const current = this.#credentials
    let pending = inflight.get(current.refreshToken)
    if (!pending) {
      pending = this.#fetchTokens(current).finally(() => inflight.delete(current.refreshToken))
      inflight.set(current.refreshToken, pending)
    }
    const next = await pending
    await this.options.onCredentialsChanged?.(next)
    return next
  }

  async #fetchTokens(current: SalesforceCredentials): Promise<SalesforceCredentials> {
    const tokens = await refreshTokens(
      {
        loginUrl: current.loginUrl,
        clientId: current.clientId,
        clientSecret: current.clientSecret,
        refreshToken: current.refreshToken,
      },
      {
        signal: this.options.signal,
        stop: this.options.stop,
        timeouts: this.timeouts,
        log: this.options.log,
        labels: this.options.labels,
        onRetry: this.options.onRetry,
      },
    )
    return {
      ...current,
      accessToken: tokens.accessToken,
      instanceUrl: tokens.instanceUrl,
      refreshToken: tokens.refreshToken ?? current.refreshToken,
    }
  }
}

/** Stored credentials, parsed; a connection stored by an older version gets the defaults. */
export function parseStored(credentials: Credentials): SalesforceCredentials {
  const parsed = salesforceConfigSchema.safeParse(credentials)
  if (parsed.success) return parsed.data
  const issue = parsed.error.issues[0]
  throw new VendorError(
    'vendor_auth_failed',
    `The stored Salesforce credentials are incomplete ("${issue?.path.join('.') ?? ''}": ${issue?.message ?? 'invalid'}). Reconnect Salesforce.`,
  )
}

/**
 * What a failed jsforce request means to the retry policy: our transport's VendorErrors as they
 * are, a 401 as an expired session, Salesforce's transient codes (UNABLE_TO_LOCK_ROW…) as
 * retryable; anything else unchanged, for the caller to read its Salesforce code.
 */
function classify(err: unknown): unknown {
  if (err instanceof AppError) return err
  const { code } = salesforceError(err)
  if (code === 'INVALID_SESSION_ID' || code === 'ERROR_HTTP_401') {
    return new SessionExpiredError('Salesforce', { cause: err })
  }
  if (TRANSIENT.has(code)) return toVendorError(err, 'calling Salesforce')
  return err
}

/** A request for the log: method and path, never the query string (or a header). */
function describeCall(request: string | HttpRequest): string {
  const { method, url } = typeof request === 'string' ? { method: 'GET', url: request } : request
  return `${method} ${url.replace(/^https?:\/\/[^/]+/, '').split('?')[0] ?? ''}`
}
