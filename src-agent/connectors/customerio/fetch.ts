import type { z } from 'zod'
import { VendorError } from '../../../shared/errors.js'
import { vendorJson } from '../http.js'
import type { CredentialOptions } from '../interface.js'
import {
  apiBase,
  customersPageSchema,
  messagesPageSchema,
  type CustomerioConfig,
} from './schemas.js'

export const VENDOR = 'Customer.io'

/** Customer.io answers a burst with bare 429s (no Retry-After): more tries, jittered backoff. */
const RETRY = { maxAttempts: 8, baseDelayMs: 500, maxDelayMs: 8_000 }

async function call<T>(
  config: CustomerioConfig,
  path: string,
  query: Record<string, string | undefined>,
  schema: z.ZodType<T>,
  options: CredentialOptions,
  body?: unknown,
): Promise<T> {
  const url = new URL(`${apiBase(config)}${path}`)
  for (const [key, value] of Object.entries(query)) if (value) url.searchParams.set(key, value)
  const json = await vendorJson(url.toString(), {
    vendor: VENDOR,
    method: body === undefined ? 'GET' : 'POST',
    headers: {
      authorization: `Bearer ${config.appApiKey}`,
      accept: 'application/json',
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    retry: RETRY,
    signal: options.signal,
    stop: options.stop,
    log: options.log,
    labels: options.labels,
    onRetry: options.onRetry,
  })
  const parsed = schema.safeParse(json)
  if (!parsed.success) {
    throw new VendorError(
      'vendor_bad_response',
      `${VENDOR} returned a ${path} page we do not understand.`,
      {
        retryable: true,
      },
    )
  }
  return parsed.data
}

/** The key check: the workspaces the key can see. */
export async function checkKey(
  config: CustomerioConfig,
  options: CredentialOptions = {},
): Promise<void> {
  const url = `${apiBase(config)}/workspaces`
  await vendorJson(url, {
    vendor: VENDOR,
    headers: { authorization: `Bearer ${config.appApiKey}`, accept: 'application/json' },
    retry: RETRY,
    signal: options.signal,
    stop: options.stop,
    log: options.log,
    labels: options.labels,
  })
}

/** One page of email deliveries created in [startTs, endTs]. */
export function fetchMessages(
  config: CustomerioConfig,
  page: { startTs: number; endTs: number; start: string | null; limit: number },
  options: CredentialOptions = {},
) {
  return call(
    config,
    '/messages',
    {
      type: 'email',
      start_ts: String(page.startTs),
      end_ts: String(page.endTs),
      limit: String(page.limit),
      start: page.start ?? undefined,
    },
    messagesPageSchema,
    options,
  )
}

/** One page of people: everyone with an id or an email. */
export function fetchCustomers(
  config: CustomerioConfig,
  page: { start: string | null; limit: number },
  options: CredentialOptions = {},
) {
  return call(
    config,
    '/customers',
    { start: page.start ?? undefined, limit: String(page.limit) },
    customersPageSchema,
    options,
    {
      filter: {
        or: [
          { attribute: { field: 'id', operator: 'exists' } },
          { attribute: { field: 'email', operator: 'exists' } },
        ],
      },
    },
  )
}
