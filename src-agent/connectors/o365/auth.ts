/**
 * App-only access to Microsoft Graph: MSAL's client-credentials flow, over the agent's own HTTP
 * transport (deadlines on every call), then one Graph read that needs the consented permissions.
 * Errors name what the admin must fix, in Entra's own words (its AADSTS code), never the secret.
 */
import { ConfidentialClientApplication, LogLevel } from '@azure/msal-node'
import type { INetworkModule, NetworkRequestOptions, NetworkResponse } from '@azure/msal-node'
import { VendorError } from '../../../shared/errors.js'
import { vendorJson } from '../http.js'
import type { CredentialOptions } from '../interface.js'
import { bodyText, sendHttp, transientStatus } from '../transport.js'
import type { O365Config } from './config.js'

export const VENDOR = 'Microsoft 365'

/** `<graph origin>/.default`: every application permission the admin granted. */
export function graphScope(config: Pick<O365Config, 'graphBaseUrl'>): string {
  return `${new URL(config.graphBaseUrl).origin}/.default`
}

/** An app-only access token for Graph. A refused secret or app is a vendor_auth_failed. */
export async function appOnlyToken(
  config: O365Config,
  options: Pick<CredentialOptions, 'signal'> = {},
): Promise<{ accessToken: string; expiresOn: Date | null }> {
  const authority = new URL(`${config.authority}/${config.tenantId}`)
  const client = new ConfidentialClientApplication({
    auth: {
      clientId: config.clientId,
      clientSecret: config.clientSecret,
      authority: authority.toString(),
      // Skips the public cloud's instance discovery: the host is the one configured.
      knownAuthorities: [authority.host],
    },
    system: {
      networkClient: msalNetwork(options.signal),
      loggerOptions: {
        logLevel: LogLevel.Error,
        piiLoggingEnabled: false,
        loggerCallback: () => undefined,
      },
    },
  })
  try {
    const result = await client.acquireTokenByClientCredential({ scopes: [graphScope(config)] })
    if (!result?.accessToken)
      throw new VendorError('vendor_bad_response', `${VENDOR} returned no access token.`)
    return { accessToken: result.accessToken, expiresOn: result.expiresOn ?? null }
  } catch (err) {
    throw toVendorError(err)
  }
}

/**
 * Checks the app-only credentials end to end: a token, then a Graph read that only an app with
 * consented permissions may make. Before consent (or while it propagates) that read is refused.
 */
export async function checkAppOnly(
  config: O365Config,
  options: Pick<CredentialOptions, 'signal' | 'stop' | 'log' | 'labels'> = {},
): Promise<{ organization: string; tokenExpiresAt: Date | null }> {
  const { accessToken, expiresOn } = await appOnlyToken(config, options)
  const page = await vendorJson<{ value?: Array<{ id?: string; displayName?: string }> }>(
    `${config.graphBaseUrl}/organization?$select=id,displayName`,
    {
      vendor: VENDOR,
      headers: { authorization: `Bearer ${accessToken}` },
      signal: options.signal,
      stop: options.stop,
      log: options.log,
      labels: options.labels,
      classifyError: ({ status, body }) =>
        status === 403 && body.includes('Authorization_RequestDenied')
          ? new VendorError(
              'vendor_auth_failed',
              `${VENDOR} has not granted this app its permissions in tenant ${config.tenantId}: an admin must grant consent (Grant admin consent in the app, or API permissions → Grant admin consent in Entra ID).`,
            )
          : undefined,
    },
  )
  return {
    organization: page.value?.[0]?.displayName ?? config.tenantId,
    tokenExpiresAt: expiresOn,
  }
}

// --- implementation ---

/** MSAL's HTTP calls through the agent's transport, with its deadlines and the caller's signal. */
function msalNetwork(signal: AbortSignal | undefined): INetworkModule {
  const send = async <T>(
    method: 'GET' | 'POST',
    url: string,
    options: NetworkRequestOptions | undefined,
  ): Promise<NetworkResponse<T>> => {
    const answer = await sendHttp({
      vendor: VENDOR,
      url,
      method,
      headers: options?.headers,
      body: options?.body,
      signal,
      timeouts: { connectTimeoutMs: 10_000, idleTimeoutMs: 30_000, requestTimeoutMs: 60_000 },
    })
    const transient = transientStatus(VENDOR, answer)
    if (transient) throw transient
    let body: T
    try {
      body = JSON.parse(bodyText(answer.body)) as T
    } catch {
      throw new VendorError(
        'vendor_bad_response',
        `${VENDOR} answered ${url.split('?')[0]} with something that is not JSON (${answer.status}).`,
      )
    }
    return { status: answer.status, headers: answer.headers, body }
  }
  return {
    sendGetRequestAsync: (url, options) => send('GET', url, options),
    sendPostRequestAsync: (url, options) => send('POST', url, options),
  }
}

/** MSAL's errors as an admin reads them: Entra's AADSTS sentence, without trace ids. */
function toVendorError(err: unknown): VendorError {
  if (err instanceof VendorError) return err
  const e = err as { errorCode?: string; errorMessage?: string; message?: string }
  const raw = e.errorMessage ?? e.message ?? String(err)
  // MSAL wraps Entra's sentence in "Error(s): … - Timestamp: … - Description: AADSTS…: … Trace ID…".
  const text = (entraSentence(raw) ?? raw.split(/\r?\n/)[0] ?? '').trim()
  const code = e.errorCode ?? ''
  const auth = [
    'invalid_client',
    'unauthorized_client',
    'invalid_request',
    'invalid_grant',
    'invalid_scope',
  ].includes(code)
  const hint = /AADSTS7000215/.test(text)
    ? ' Check the client secret: use its Value, not its Secret ID, and make sure it has not expired.'
    : /AADSTS700016/.test(text)
      ? ' Check the Application (client) ID and the tenant ID.'
      : /AADSTS90002/.test(text)
        ? ' Check the tenant ID.'
        : ''
  return new VendorError(
    auth ? 'vendor_auth_failed' : 'vendor_unavailable',
    `${VENDOR} refused the app's credentials: ${text || code}.${hint}`.replace('..', '.'),
    { cause: err, retryable: !auth },
  )
}

/** "AADSTS7000215: Invalid client secret provided. …" out of Entra's or MSAL's wording. */
export function entraSentence(message: string): string | undefined {
  return /AADSTS\d+:.*?(?=\s*(?:\r|\n|Trace ID:| - Correlation ID| - Trace ID|$))/s.exec(
    message,
  )?.[0]
}
