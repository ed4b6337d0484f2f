/**
 * Connecting Salesforce by signing in: the OAuth 2.0 web-server flow with PKCE (auth.ts) on a
 * loopback redirect URI, which must be registered in the connected app exactly as used.
 * https://help.salesforce.com/s/articleView?id=remoteaccess_oauth_web_server_flow.htm
 */
import { z } from 'zod'
import type { SignInCapability } from '../interface.js'
import { createAuthorization, exchangeCode, readCallback } from './auth.js'
import { salesforceConfigSchema, type SalesforceConfig } from './schemas.js'

const obtained = 'is obtained by signing in: remove it from the config'

/**
 * The config file of `connect salesforce --browser`: the connection's settings without its
 * tokens. A stray token is refused rather than dropped, so nobody believes it is used.
 */
export const salesforceSignInConfigSchema = salesforceConfigSchema
  .omit({ instanceUrl: true, refreshToken: true, accessToken: true })
  .extend({
    /** Ignored: the token response says which instance the admin's org lives on. */
    instanceUrl: z.url().optional(),
    refreshToken: z.undefined({ error: obtained }).optional(),
    accessToken: z.undefined({ error: obtained }).optional(),
    /** What to ask for; `refresh_token` is needed to keep syncing after the session ends. */
    scope: z.string().min(1).default('api refresh_token'),
  })
export type SalesforceSignInConfig = z.infer<typeof salesforceSignInConfigSchema>

export const salesforceSignIn: SignInCapability<SalesforceConfig, SalesforceSignInConfig> = {
  configSchema: salesforceSignInConfigSchema,

  begin(config, { redirectUri }) {
    const auth = createAuthorization({
      loginUrl: config.loginUrl,
      clientId: config.clientId,
      redirectUri,
      scope: config.scope,
    })
    return {
      url: auth.url,
      state: auth.state,
      redirectUri,
      secrets: { codeVerifier: auth.codeVerifier },
    }
  },

  async complete(config, pending, callback, options = {}) {
    const code = readCallback(callback, pending.state)
    const codeVerifier = pending.secrets.codeVerifier
    if (!codeVerifier) throw new Error('The Salesforce sign-in lost its PKCE verifier.')
    const tokens = await exchangeCode(
      {
        loginUrl: config.loginUrl,
        clientId: config.clientId,
        clientSecret: config.clientSecret,
        redirectUri: pending.redirectUri,
        code,
        codeVerifier,
      },
      {
        signal: options.signal,
        stop: options.stop,
        log: options.log,
        onRetry: options.onRetry,
        timeouts: {
          connectTimeoutMs: config.connectTimeoutMs,
          idleTimeoutMs: config.idleTimeoutMs,
          requestTimeoutMs: config.requestTimeoutMs,
        },
      },
    )
    const { scope: _scope, ...settings } = config
    return salesforceConfigSchema.parse({
      ...settings,
      instanceUrl: tokens.instanceUrl,
      refreshToken: tokens.refreshToken,
      accessToken: tokens.accessToken,
    })
  },
}
