/**
 * Connecting Microsoft 365 through the browser: the admin-consent flow of the Microsoft identity
 * platform. An admin of the customer's tenant opens
 * `{authority}/{tenant}/v2.0/adminconsent?client_id&scope=<graph>/.default&redirect_uri&state`,
 * grants the app's application permissions, and is sent back to the loopback with
 * `admin_consent=True&tenant=<id>&state` (or `error=…`). The app-only credentials are then
 * checked with MSAL before anything is stored.
 * https://learn.microsoft.com/entra/identity-platform/v2-admin-consent
 */
import { randomBytes } from 'node:crypto'
import { VendorError } from '../../../shared/errors.js'
import { wait } from '../retry.js'
import type { SignInCapability } from '../interface.js'
import { VENDOR, checkAppOnly, entraSentence, graphScope } from './auth.js'
import {
  o365ConfigSchema,
  o365SignInConfigSchema,
  type O365Config,
  type O365SignInConfig,
} from './config.js'

/** Consent takes a moment to reach Graph: a refused check is tried again for about half a minute. */
const PROPAGATION_WAITS_MS = [1_000, 2_000, 4_000, 8_000, 15_000]

export const o365SignIn: SignInCapability<O365Config, O365SignInConfig> = {
  configSchema: o365SignInConfigSchema,

  begin(config, { redirectUri }) {
    const state = randomBytes(24).toString('base64url')
    const url = new URL(`${config.authority}/${config.tenantId}/v2.0/adminconsent`)
    url.searchParams.set('client_id', config.clientId)
    url.searchParams.set('scope', graphScope(config))
    url.searchParams.set('redirect_uri', redirectUri)
    url.searchParams.set('state', state)
    return { url: url.toString(), state, redirectUri, secrets: {} }
  },

  async complete(config, pending, callback, options = {}) {
    if (callback.get('state') !== pending.state) {
      throw new VendorError(
        'vendor_auth_failed',
        `The ${VENDOR} consent answer does not belong to this sign-in.`,
      )
    }
    const error = callback.get('error')
    if (error) {
      const raw = callback.get('error_description') ?? ''
      const description = (entraSentence(raw) ?? raw.split(/\r?\n/)[0] ?? '').trim()
      throw new VendorError(
        'vendor_auth_failed',
        `${VENDOR} admin consent was not granted: ${description || error} (${error}).`,
        { retryable: false },
      )
    }
    if (callback.get('admin_consent')?.toLowerCase() !== 'true') {
      throw new VendorError(
        'vendor_auth_failed',
        `${VENDOR} did not confirm the admin consent. Sign in as an admin of the tenant and grant it again.`,
      )
    }
    const tenant = callback.get('tenant') ?? ''
    const parsed = o365ConfigSchema.safeParse({ ...config, tenantId: tenant })
    if (!parsed.success) {
      throw new VendorError(
        'vendor_bad_response',
        `${VENDOR} sent back a tenant ID that is not one ("${tenant.slice(0, 60)}").`,
      )
    }
    if (
      config.tenantId !== 'organizations' &&
      parsed.data.tenantId.toLowerCase() !== config.tenantId.toLowerCase()
    ) {
      throw new VendorError(
        'vendor_auth_failed',
        `Consent was granted in tenant ${parsed.data.tenantId}, not in ${config.tenantId} as configured. Sign in with an admin of ${config.tenantId}.`,
      )
    }
    await checkAfterConsent(parsed.data, options)
    return parsed.data
  },
}

/**
 * The app-only check right after consent. Permissions refused now may only mean the consent has
 * not reached Graph yet, so that refusal is tried again a few times; any other failure, or a
 * stop, ends it at once.
 */
async function checkAfterConsent(
  config: O365Config,
  options: Parameters<SignInCapability['complete']>[3] = {},
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await checkAppOnly(config, options)
      return
    } catch (err) {
      const propagating =
        err instanceof VendorError &&
        err.code === 'vendor_auth_failed' &&
        /has not granted/.test(err.userMessage)
      const delayMs = PROPAGATION_WAITS_MS[attempt]
      if (!propagating || delayMs === undefined) throw err
      options.log?.info(
        { attempt: attempt + 1, delayMs },
        'consent not visible in Graph yet; checking again',
      )
      if (!(await wait(delayMs, options.signal, options.stop))) throw err
    }
  }
}
