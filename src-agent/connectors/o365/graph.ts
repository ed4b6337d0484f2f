/**
 * Microsoft Graph reads for the Microsoft 365 connector: app-only tokens (cached until shortly
 * before they expire), deadlines and retries through vendorJson (429 waits for Retry-After), and
 * the two answers a delta walk must tell apart: an expired delta token (410 Gone, or
 * syncStateNotFound / resyncRequired) and a user without a mailbox (MailboxNotEnabledForRESTAPI).
 */
import { VendorError } from '../../../shared/errors.js'
import { vendorJson } from '../http.js'
import type { CredentialOptions } from '../interface.js'
import { VENDOR, appOnlyToken } from './auth.js'
import type { O365Config } from './config.js'

/** The delta token expired: that mailbox's walk starts over. */
export class DeltaExpired extends VendorError {}
/** The user has no Exchange Online mailbox: skipped, not fatal. */
export class NoMailbox extends VendorError {}

const tokens = new Map<string, { accessToken: string; expiresAt: number }>()

async function token(config: O365Config, options: CredentialOptions): Promise<string> {
  const key = `${config.authority}|${config.tenantId}|${config.clientId}`
  const cached = tokens.get(key)
  if (cached && cached.expiresAt > Date.now() + 5 * 60_000) return cached.accessToken
  const fresh = await appOnlyToken(config, options)
  tokens.set(key, {
    accessToken: fresh.accessToken,
    expiresAt: fresh.expiresOn?.getTime() ?? Date.now() + 30 * 60_000,
  })
  return fresh.accessToken
}

/** A Graph page: items in `value`, then `@odata.nextLink` or, at the end, `@odata.deltaLink`. */
export interface GraphPage {
  value: Array<Record<string, unknown>>
  '@odata.nextLink'?: string
  '@odata.deltaLink'?: string
}

/** GETs a Graph URL (a path under graphBaseUrl, or a next/delta link Graph gave). */
export async function graphGet(
  config: O365Config,
  pathOrUrl: string,
  options: CredentialOptions & { pageSize?: number } = {},
): Promise<GraphPage> {
  const url = pathOrUrl.startsWith('https://') ? pathOrUrl : `${config.graphBaseUrl}${pathOrUrl}`
  // Graph's links must point back at Graph: a page is never allowed to send us elsewhere.
  if (new URL(url).origin !== new URL(config.graphBaseUrl).origin) {
    throw new VendorError('vendor_bad_response', `${VENDOR} sent a link to another host.`, {
      retryable: false,
    })
  }
  const accessToken = await token(config, options)
  const body = await vendorJson<GraphPage>(url, {
    vendor: VENDOR,
    headers: {
      authorization: `Bearer ${accessToken}`,
      accept: 'application/json',
      // Times in UTC whatever the mailbox's zone; pages of a bounded size.
      prefer: `outlook.timezone="UTC", odata.maxpagesize=${options.pageSize ?? 100}`,
    },
    signal: options.signal,
    stop: options.stop,
    log: options.log,
    labels: options.labels,
    onRetry: options.onRetry,
    classifyError: ({ status, body: text }) => {
      if (status === 410 || /"(syncStateNotFound|resyncRequired)"/.test(text)) {
        return new DeltaExpired(
          'vendor_bad_response',
          `${VENDOR} says the mailbox's change token expired.`,
          {
            retryable: false,
          },
        )
      }
      if (status === 404 && text.includes('MailboxNotEnabledForRESTAPI')) {
        return new NoMailbox('vendor_bad_response', `${VENDOR}: this user has no mailbox.`, {
          retryable: false,
        })
      }
      return undefined
    },
  })
  if (!Array.isArray(body?.value)) {
    throw new VendorError('vendor_bad_response', `${VENDOR} returned a page without "value".`, {
      retryable: true,
    })
  }
  return body
}
