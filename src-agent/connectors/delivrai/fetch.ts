import { VendorError } from '../../../shared/errors.js'
import { vendorJson } from '../http.js'
import type { CredentialOptions } from '../interface.js'
import { delivrPageSchema, type DelivrConfig, type DelivrPage } from './schemas.js'

export const VENDOR = 'Delivr.ai'

/** Rows a page asks for. */
export const PAGE_SIZE = 100

/** GETs one Delivr.ai path with the API key, under the deadlines and the retry policy. */
async function get(
  config: DelivrConfig,
  path: string,
  query: Record<string, string | null | undefined>,
  options: CredentialOptions,
): Promise<unknown> {
  const url = new URL(`${config.baseUrl}${path}`)
  for (const [key, value] of Object.entries(query)) if (value) url.searchParams.set(key, value)
  return vendorJson(url.toString(), {
    vendor: VENDOR,
    headers: { 'x-api-key': config.apiKey, accept: 'application/json' },
    signal: options.signal,
    stop: options.stop,
    log: options.log,
    labels: options.labels,
    onRetry: options.onRetry,
  })
}

/** The health endpoint: proves the key and the host. */
export async function checkHealth(
  config: DelivrConfig,
  options: CredentialOptions = {},
): Promise<void> {
  await get(config, '/v1/health', {}, options)
}

/** One page of a feed from `since` (inclusive), continuing at the vendor's `cursor`. */
export async function fetchFeed(
  config: DelivrConfig,
  feed: '/v1/intent-signals' | '/v1/member-engagement',
  page: { since: string; cursor: string | null; limit?: number },
  options: CredentialOptions = {},
): Promise<DelivrPage> {
  const body = await get(
    config,
    feed,
    { since: page.since, limit: String(page.limit ?? PAGE_SIZE), cursor: page.cursor },
    options,
  )
  const parsed = delivrPageSchema.safeParse(body)
  if (!parsed.success) {
    throw new VendorError(
      'vendor_bad_response',
      `${VENDOR} returned a ${feed} page that is not { data: [...], nextCursor }.`,
      { retryable: true },
    )
  }
  return parsed.data
}
