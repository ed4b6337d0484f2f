/**
 * Salesforce OAuth 2.0 web-server flow with PKCE (a desktop app is a public client) and the
 * refresh-token grant. Every token is registered with the logger's redaction the moment it
 * arrives, so no log line can print it.
 */
import { createHash, randomBytes } from 'node:crypto'
import { VendorError } from '../../../shared/errors.js'
import type { Logger } from '../../logging/logger.js'
import { registerSecret } from '../../../shared/redact.js'
import type { CallLabels } from '../../telemetry/metrics.js'
import { withRetry, type RetryEvent } from '../retry.js'
import { bodyText, sendHttp, transientStatus, type Timeouts } from '../transport.js'
import { tokenErrorSchema, tokenResponseSchema } from './schemas.js'

export interface OAuthClient {
  loginUrl: string
  clientId: string
  clientSecret?: string | undefined
}

/** Tokens from the token endpoint. `refreshToken` is absent on a refresh unless the org rotates them. */
export interface TokenSet {
  accessToken: string
  refreshToken?: string
  instanceUrl: string
}

/** Options of a token call: the caller's signal, the deadlines, and who hears its retries. */
export interface TokenCallOptions {
  signal?: AbortSignal | undefined
  /** No retry after it aborts (CredentialOptions.stop). */
  stop?: AbortSignal | undefined
  timeouts?: Partial<Timeouts> | undefined
  log?: Logger | undefined
  onRetry?: ((event: RetryEvent) => void) | undefined
  /** Who the call is made for, on the vendor-call metrics (see CallLabels). */
  labels?: CallLabels | undefined
}

export interface Authorization {
  /** Open this in the admin's browser. */
  url: string
  /** Check it on the callback (CSRF). */
  state: string
  /** Keep it until the code exchange; it never leaves this machine before then. */
  codeVerifier: string
}

/**
 * The authorize URL with a fresh `state` and PKCE S256 `code_challenge`.
 * https://help.salesforce.com/s/articleView?id=remoteaccess_oauth_web_server_flow.htm
 */
export function createAuthorization(
  client: OAuthClient & { redirectUri: string; scope?: string },
): Authorization {
  const codeVerifier = randomBytes(64).toString('base64url')
  registerSecret(codeVerifier)
  const state = randomBytes(16).toString('base64url')
  const url = new URL('services/oauth2/authorize', withSlash(client.loginUrl))
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: client.clientId,
    redirect_uri: client.redirectUri,
    scope: client.scope ?? 'api refresh_token',
    state,
    code_challenge: createHash('sha256').update(codeVerifier).digest('base64url'),
    code_challenge_method: 'S256',
  }).toString()
  return { url: url.toString(), state, codeVerifier }
}

/**
 * The authorization code from the loopback callback (its URL or query parameters), after checking
 * `state`. A refusal (`error=access_denied`, an admin who clicked Deny) throws with Salesforce's
 * reason.
 */
export function readCallback(callback: string | URLSearchParams, expectedState: string): string {
  const params = typeof callback === 'string' ? new URL(callback).searchParams : callback
  if (params.get('state') !== expectedState) {
    throw new VendorError(
      'vendor_auth_failed',
      'The Salesforce sign-in answered for a different request (state mismatch). Start the connection again.',
    )
  }
  const error = params.get('error')
  if (error) {
    const reason = (params.get('error_description') ?? '').slice(0, 300) || 'no reason given'
    throw new VendorError(
      'vendor_auth_failed',
      `Salesforce sign-in was refused: ${reason} (${error.slice(0, 100)}).`,
    )
  }
  const code = params.get('code')
  if (!code) {
    throw new VendorError(
      'vendor_auth_failed',
      'The Salesforce sign-in returned no authorization code.',
    )
  }
  registerSecret(code)
  return code
}

/** Exchanges the authorization code (with its PKCE verifier) for tokens. */
export async function exchangeCode(
  client: OAuthClient & { redirectUri: string; code: string; codeVerifier: string },
  options: TokenCallOptions = {},
): Promise<TokenSet & { refreshToken: string }> {
  const tokens = await postToken(
    client,
    {
      grant_type: 'authorization_code',
      code: client.code,
      redirect_uri: client.redirectUri,
      code_verifier: client.codeVerifier,
    },
    options,
  )
  if (!tokens.refreshToken) {
    throw new VendorError(
      'vendor_auth_failed',
      'Salesforce issued no refresh token. Add the "refresh_token" (offline access) scope to the connected app and connect again.',
    )
  }
  return { ...tokens, refreshToken: tokens.refreshToken }
}

/**
 * A new access token from a refresh token. With rotation on, the answer carries a new refresh
 * token and the presented one stops working, so the caller must persist it before anything else.
 */
export async function refreshTokens(
  client: OAuthClient & { refreshToken: string },
  options: TokenCallOptions = {},
): Promise<TokenSet> {
  return postToken(
    client,
    { grant_type: 'refresh_token', refresh_token: client.refreshToken },
    options,
  )
}

/** The message an admin sees when the refresh token no longer works. */
export const REVOKED_MESSAGE =
  'Salesforce refused the stored refresh token: it was revoked or has expired. An admin must reconnect Salesforce in Settings.'

/**
 * POST {loginUrl}/services/oauth2/token (form-encoded) under the deadlines and the retry policy;
 * errors become VendorError. A refused grant is not retried.
 */
async function postToken(
  client: OAuthClient,
  params: Record<string, string>,
  options: TokenCallOptions,
): Promise<TokenSet> {
  const form = new URLSearchParams({ ...params, client_id: client.clientId })
  if (client.clientSecret) form.set('client_secret', client.clientSecret)
  return withRetry(() => postTokenOnce(client, form, params.grant_type, options), {
    vendor: LOGIN,
    what: 'POST /services/oauth2/token',
    signal: options.signal,
    stop: options.stop,
    log: options.log,
    labels: options.labels,
    onRetry: options.onRetry,
  })
}

const LOGIN = "Salesforce's login service"

async function postTokenOnce(
  client: OAuthClient,
  form: URLSearchParams,
  grantType: string | undefined,
  options: TokenCallOptions,
): Promise<TokenSet> {
  const answer = await sendHttp({
    vendor: LOGIN,
    url: new URL('services/oauth2/token', withSlash(client.loginUrl)).toString(),
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: form.toString(),
    signal: options.signal,
    timeouts: options.timeouts,
  })
  const transient = transientStatus(LOGIN, answer)
  if (transient) throw transient
  let body: unknown
  try {
    body = JSON.parse(bodyText(answer.body))
  } catch {
    body = undefined
  }
  if (answer.status >= 200 && answer.status < 300) {
    const parsed = tokenResponseSchema.safeParse(body)
    if (!parsed.success) {
      throw new VendorError(
        'vendor_bad_response',
        'Salesforce sent a token response we do not understand.',
        { retryable: true },
      )
    }
    registerSecret(parsed.data.access_token)
    if (parsed.data.refresh_token) registerSecret(parsed.data.refresh_token)
    return {
      accessToken: parsed.data.access_token,
      ...(parsed.data.refresh_token ? { refreshToken: parsed.data.refresh_token } : {}),
      instanceUrl: parsed.data.instance_url,
    }
  }
  const error = tokenErrorSchema.safeParse(body)
  const code = error.success ? error.data.error : `HTTP ${answer.status}`
  if (code === 'invalid_grant' && grantType === 'refresh_token') {
    throw new VendorError('vendor_auth_failed', REVOKED_MESSAGE)
  }
  // Only the error code: descriptions can echo what was sent.
  throw new VendorError(
    'vendor_auth_failed',
    `Salesforce refused the sign-in (${code}). Check the connected app's client id and callback URL, then reconnect Salesforce.`,
  )
}

function withSlash(url: string): string {
  return url.endsWith('/') ? url : `${url}/`
}
