import type { z } from 'zod'
import { VendorError } from '../../../shared/errors.js'
import { vendorJson } from '../http.js'
import type { CredentialOptions } from '../interface.js'
import {
  exampleFieldsSchema,
  exampleMeetingPageSchema,
  examplePageSchema,
  exampleTeamsSchema,
  type ExampleConfig,
} from './schemas.js'

/**
 * GETs one vendor path and checks its shape. Link the vendor's endpoint docs here. vendorJson
 * applies the deadlines and the retry policy; the caller's signal, stop, logger and onRetry go
 * with it.
 */
async function get<T>(
  config: ExampleConfig,
  path: string,
  query: Record<string, string | null>,
  schema: z.ZodType<T>,
  options: CredentialOptions,
): Promise<T> {
  const url = new URL(path, config.baseUrl)
  for (const [key, value] of Object.entries(query)) if (value) url.searchParams.set(key, value)
  const body = await vendorJson(url.toString(), {
    vendor: 'Example',
    headers: { authorization: `Bearer ${config.apiKey}` },
    signal: options.signal,
    stop: options.stop,
    log: options.log,
    labels: options.labels,
    onRetry: options.onRetry,
  })
  const parsed = schema.safeParse(body)
  if (!parsed.success) {
    throw new VendorError(
      'vendor_bad_response',
      `Example returned a ${path} page we do not understand.`,
      { retryable: false },
    )
  }
  return parsed.data
}

/** One page of contacts after `cursor`. */
export function fetchContacts(
  config: ExampleConfig,
  cursor: string | null,
  options: CredentialOptions = {},
) {
  return get(config, '/v1/contacts', { cursor }, examplePageSchema, options)
}

/** One page of a team's meetings after `cursor`. */
export function fetchMeetings(
  config: ExampleConfig,
  team: string,
  cursor: string | null,
  options: CredentialOptions = {},
) {
  const path = `/v1/teams/${encodeURIComponent(team)}/meetings`
  return get(config, path, { cursor }, exampleMeetingPageSchema, options)
}

/** The teams: the partitions of the meetings stream. */
export async function fetchTeams(config: ExampleConfig, options: CredentialOptions = {}) {
  return (await get(config, '/v1/teams', {}, exampleTeamsSchema, options)).teams.map((t) => t.id)
}

/** The fields of one kind of record. */
export async function fetchFields(
  config: ExampleConfig,
  kind: 'contact' | 'meeting',
  options: CredentialOptions = {},
) {
  return (await get(config, `/v1/fields/${kind}`, {}, exampleFieldsSchema, options)).fields
}
