import { VendorError } from '../../../shared/errors.js'
import { vendorJson } from '../http.js'
import type { CredentialOptions } from '../interface.js'
import { examplePageSchema, type ExampleConfig } from './schemas.js'

/**
 * One page of contacts after `cursor`. Link the vendor's endpoint docs here. vendorJson applies
 * the deadlines and the retry policy; the caller's signal, stop, logger and onRetry go with it.
 */
export async function fetchContacts(
  config: ExampleConfig,
  cursor: string | null,
  options: CredentialOptions = {},
): Promise<{ contacts: Array<Record<string, unknown>>; next: string | null }> {
  const url = new URL('/v1/contacts', config.baseUrl)
  if (cursor) url.searchParams.set('cursor', cursor)
  const body = await vendorJson(url.toString(), {
    vendor: 'Example',
    headers: { authorization: `Bearer ${config.apiKey}` },
    signal: options.signal,
    stop: options.stop,
    log: options.log,
    onRetry: options.onRetry,
  })
  const page = examplePageSchema.safeParse(body)
  if (!page.success) {
    throw new VendorError(
      'vendor_bad_response',
      'Example returned a contact page we do not understand.',
      {
        retryable: false,
      },
    )
  }
  return { contacts: page.data.contacts, next: page.data.next_cursor }
}
