/**
 * Optional: connecting by signing in through a browser (OAuth 2.0 code + PKCE, RFC 7636). The
 * admin's config file names the app (`clientId`); `complete` trades the callback's code for an
 * API key the connector then uses like a typed-in one. Leave it out for API-key-only vendors.
 */
import { createHash, randomBytes } from 'node:crypto'
import { z } from 'zod'
import { VendorError } from '../../../shared/errors.js'
import { vendorJson } from '../http.js'
import type { SignInCapability } from '../interface.js'
import type { ExampleConfig } from './schemas.js'

export const exampleSignInConfigSchema = z.object({
  baseUrl: z.string().url(),
  clientId: z.string().min(1),
})
export type ExampleSignInConfig = z.infer<typeof exampleSignInConfigSchema>

const tokenSchema = z.object({ access_token: z.string().min(1) })

export const exampleSignIn: SignInCapability<ExampleConfig, ExampleSignInConfig> = {
  configSchema: exampleSignInConfigSchema,

  begin(config, { redirectUri }) {
    const state = randomBytes(16).toString('base64url')
    const verifier = randomBytes(32).toString('base64url')
    const url = new URL('/oauth/authorize', config.baseUrl)
    url.search = new URLSearchParams({
      response_type: 'code',
      client_id: config.clientId,
      redirect_uri: redirectUri,
      state,
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
    }).toString()
    return { url: url.toString(), state, redirectUri, secrets: { verifier } }
  },

  async complete(config, pending, callback, options = {}) {
    // The loopback listener checked `state`; a refusal comes back as `error`.
    const error = callback.get('error')
    if (error || callback.get('state') !== pending.state) {
      throw new VendorError(
        'vendor_auth_failed',
        `Example sign-in was refused: ${callback.get('error_description') ?? error ?? 'the state did not match'}.`,
        { retryable: false },
      )
    }
    const body = await vendorJson(new URL('/oauth/token', config.baseUrl).toString(), {
      vendor: 'Example',
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        client_id: config.clientId,
        code: callback.get('code') ?? '',
        redirect_uri: pending.redirectUri,
        code_verifier: pending.secrets.verifier ?? '',
      }).toString(),
      signal: options.signal,
      stop: options.stop,
      log: options.log,
      onRetry: options.onRetry,
    })
    const tokens = tokenSchema.safeParse(body)
    if (!tokens.success) {
      throw new VendorError(
        'vendor_bad_response',
        'Example answered the sign-in without a token.',
        {
          retryable: false,
        },
      )
    }
    return { baseUrl: config.baseUrl, apiKey: tokens.data.access_token }
  },
}
