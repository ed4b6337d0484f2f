/**
 * Customer.io's App API (https://docs.customer.io/api/app/): Bearer App API key, US or EU host,
 * lists paged with `start` = the previous page's `next`. ../shared/vendor-apis.md §2.
 */
import { z } from 'zod'

export const customerioConfigSchema = z.object({
  /** Settings › API Credentials › App API Keys. */
  appApiKey: z.string().trim().min(8, 'is too short to be an App API key'),
  region: z.enum(['us', 'eu']).default('us'),
  /** Another App API base than the region's (with or without /v1). */
  baseUrl: z.url().optional(),
  /** The Reporting Webhooks signing key (Data & Integrations › Reporting Webhooks). */
  webhookSigningKey: z.string().trim().min(16).optional(),
})
export type CustomerioConfig = z.infer<typeof customerioConfigSchema>

/** The App API base for a config, always ending in /v1. */
export function apiBase(config: CustomerioConfig): string {
  const base =
    config.baseUrl ??
    (config.region === 'eu' ? 'https://api-eu.customer.io' : 'https://api.customer.io')
  const trimmed = base.replace(/\/+$/, '')
  return trimmed.endsWith('/v1') ? trimmed : `${trimmed}/v1`
}

/** A page of deliveries (`GET /v1/messages`): each kept as sent for the quality step. */
export const messagesPageSchema = z.object({
  messages: z.array(z.record(z.string(), z.unknown())),
  next: z.string().nullable().optional(),
})

/** A page of people (`POST /v1/customers`): their identifiers. */
export const customersPageSchema = z.object({
  identifiers: z.array(z.record(z.string(), z.unknown())),
  next: z.string().nullable().optional(),
})

/**
 * Where a stream stands. Deliveries: the window being read (creation time, unix seconds) and the
 * position in it; each walk starts a lookback before the last one ended, because opens and clicks
 * keep arriving on deliveries made days before. People: the position of the walk, null between.
 */
export const customerioCursorSchema = z.object({
  v: z.literal(1),
  start: z.string().nullable(),
  startTs: z.number().int().optional(),
  endTs: z.number().int().optional(),
})
export type CustomerioCursor = z.infer<typeof customerioCursorSchema>
