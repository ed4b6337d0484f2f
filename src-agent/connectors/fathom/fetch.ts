import { VendorError } from '../../../shared/errors.js'
import { vendorJson } from '../http.js'
import type { CredentialOptions } from '../interface.js'
import { fathomPageSchema, type FathomConfig, type FathomPage } from './schemas.js'

export const VENDOR = 'Fathom'

/** One page of meetings with their content; the filters go on every page (a cursor alone drops them). */
export async function fetchMeetings(
  config: FathomConfig,
  page: { createdAfter: string | null; cursor: string | null },
  options: CredentialOptions = {},
): Promise<FathomPage> {
  const url = new URL(`${config.baseUrl}/meetings`)
  if (page.createdAfter) url.searchParams.set('created_after', page.createdAfter)
  url.searchParams.set('include_transcript', 'true')
  url.searchParams.set('include_summary', 'true')
  url.searchParams.set('include_action_items', 'true')
  if (page.cursor) url.searchParams.set('cursor', page.cursor)
  const body = await vendorJson(url.toString(), {
    vendor: VENDOR,
    headers: { 'x-api-key': config.apiKey, accept: 'application/json' },
    signal: options.signal,
    stop: options.stop,
    log: options.log,
    labels: options.labels,
    onRetry: options.onRetry,
  })
  const parsed = fathomPageSchema.safeParse(body)
  if (!parsed.success) {
    throw new VendorError(
      'vendor_bad_response',
      `${VENDOR} returned a meetings page that is not { items: [...], next_cursor }.`,
      { retryable: true },
    )
  }
  return parsed.data
}

/** The health probe: the newest meeting only, no content. */
export async function probeMeetings(
  config: FathomConfig,
  options: CredentialOptions = {},
): Promise<void> {
  const url = new URL(`${config.baseUrl}/meetings`)
  url.searchParams.set('created_after', new Date(Date.now() - 60_000).toISOString())
  await vendorJson(url.toString(), {
    vendor: VENDOR,
    headers: { 'x-api-key': config.apiKey, accept: 'application/json' },
    signal: options.signal,
    stop: options.stop,
    log: options.log,
    labels: options.labels,
    retry: { maxAttempts: 2 },
  })
}
