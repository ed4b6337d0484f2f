/**
 * Fathom's External API v1 (https://developers.fathom.ai): `X-Api-Key` auth, `GET /meetings`
 * paged by an opaque `next_cursor` (10 meetings a page, newest first), `created_after` and the
 * `include_*` flags sent again on every page. ../shared/vendor-apis.md §5.
 */
import { z } from 'zod'

export const fathomConfigSchema = z.object({
  /** User Settings › API Access in Fathom. The key sees its owner's and shared meetings. */
  apiKey: z.string().trim().min(8, 'is too short to be a Fathom API key'),
  baseUrl: z
    .url()
    .default('https://api.fathom.ai/external/v1')
    .transform((value) => value.replace(/\/+$/, '')),
  /** The `whsec_…` secret of the webhook Fathom delivers to, when one is set up. */
  webhookSecret: z.string().trim().startsWith('whsec_', 'must start with whsec_').optional(),
})
export type FathomConfig = z.infer<typeof fathomConfigSchema>

/** One page of meetings: the items kept as sent; a malformed one is the quality step's. */
export const fathomPageSchema = z.object({
  items: z.array(z.record(z.string(), z.unknown())),
  next_cursor: z.string().min(1).nullable().optional(),
  limit: z.number().optional(),
})
export type FathomPage = z.infer<typeof fathomPageSchema>

/** Where the meetings stream stands: the walk in progress, and the newest created_at seen. */
export const fathomCursorSchema = z.object({
  v: z.literal(1),
  createdAfter: z.string().nullable(),
  next: z.string().nullable(),
  high: z.string().nullable(),
})
export type FathomCursor = z.infer<typeof fathomCursorSchema>
