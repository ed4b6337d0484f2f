/**
 * One authenticated jsforce Connection per connector call. When Salesforce answers 401, jsforce
 * calls our refresh function, which refreshes at most once per connection at a time: across
 * processes through the pipeline's credential lock, within a process through a shared promise.
 */
import { Connection, type HttpRequest } from 'jsforce'
import { VendorError } from '../../../shared/errors.js'
import type { Credentials } from '../interface.js'
import type { Logger } from '../../logging/logger.js'
import { refreshTokens } from './auth.js'
import { salesforceConfigSchema, type SalesforceCredentials } from './schemas.js'

export interface SessionOptions {
  signal?: AbortSignal | undefined
  log?: Logger | undefined
  /** Persists refreshed credentials. Without it the session never refreshes (see `canRefresh`). */
  onCredentialsChanged?: ((credentials: Credentials) => Promise<void>) | undefined
  credentialLock?: (<T>(fn: (latest: Credentials) => Promise<T>) => Promise<T>) | undefined
}

/** jsforce waits 30 minutes for a response by default; a stuck request should fail sooner. */
const REQUEST_TIMEOUT_MS = 5 * 60_000

/** Refreshes in flight in this process, by refresh token. */
const inflight = new Map<string, Promise<SalesforceCredentials>>()

export class SalesforceSession {
  readonly conn: Connection
  readonly options: SessionOptions
  #credentials: SalesforceCredentials
  #authFailure: VendorError | undefined

  constructor(credentials: SalesforceCredentials, options: SessionOptions = {}) {
    this.#credentials = credentials
    this.options = options
    this.conn = new Connection({
      instanceUrl: credentials.instanceUrl,
      version: credentials.apiVersion,
      ...(credentials.accessToken ? { accessToken: credentials.accessToken } : {}),
      // A refresh whose new token cannot be stored would strand a rotated refresh token.
      ...(this.canRefresh
        ? {
            refreshFn: (conn, callback) => {
              this.#refresh().then(
                (next) => {
                  conn.instanceUrl = next.instanceUrl
                  callback(null, next.accessToken)
                },
                (err: unknown) => {
                  callback(err instanceof Error ? err : new Error(String(err)))
                },
              )
            },
          }
        : {}),
    })
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
   * A REST request through the connection (401 → refresh, Sforce-Limit-Info read) with a
   * response timeout. `options` reaches jsforce's HTTP layer (responseType, transport).
   */
  async request<T = unknown>(request: string | HttpRequest, options: object = {}): Promise<T> {
    this.throwIfAborted()
    return this.conn.request<T>(request, { timeout: REQUEST_TIMEOUT_MS, ...options })
  }

  /**
   * Salesforce's clock, in epoch ms: the `Date` header of the API versions list (which needs no
   * session). Undefined when it cannot be read.
   */
  async serverTime(): Promise<number | undefined> {
    try {
      const base = this.#credentials.instanceUrl.replace(/\/$/, '')
      const res = await fetch(`${base}/services/data/`, {
        signal: AbortSignal.any([
          ...(this.options.signal ? [this.options.signal] : []),
          AbortSignal.timeout(REQUEST_TIMEOUT_MS),
        ]),
      })
      await res.body?.cancel()
      const date = Date.parse(res.headers.get('date') ?? '')
      return Number.isNaN(date) ? undefined : date
    } catch {
      this.throwIfAborted()
      return undefined
    }
  }

  throwIfAborted(): void {
    this.options.signal?.throwIfAborted()
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
      this.options.signal,
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
