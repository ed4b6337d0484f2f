/**
 * Delivr.ai's intent feed, as GTM Clarity's contract with Delivr describes it (there is no public
 * documentation of these endpoints; ../shared/vendor-apis.md §3, "PROPOSAL"):
 *
 *   GET /v1/health
 *   GET /v1/intent-signals?since=<iso>&limit=<n>[&cursor=]   → { data: [...], nextCursor }
 *   GET /v1/member-engagement?since=<iso>&limit=<n>[&cursor=] → { data: [...], nextCursor }
 *
 * Auth is the header `X-Api-Key`. Rows come in time order (signals by occurredAt, engagement by
 * windowEnd), `since` inclusive; a 429 carries Retry-After in seconds.
 */
import { z } from 'zod'

export const delivrConfigSchema = z.object({
  /** The API key Delivr.ai issued for GTM Clarity (`dlvr_…`). */
  apiKey: z.string().trim().min(8, 'is too short to be a Delivr.ai API key'),
  baseUrl: z
    .url()
    .default('https://api.delivr.ai')
    .transform((value) => value.replace(/\/+$/, '')),
})
export type DelivrConfig = z.infer<typeof delivrConfigSchema>

/**
 * One page of either feed. The rows are kept as they came (objects): a malformed row is the
 * quality step's to quarantine, with the field that is wrong, while the rest of the page lands.
 */
export const delivrPageSchema = z.object({
  data: z.array(z.record(z.string(), z.unknown())),
  nextCursor: z.string().min(1).nullable().optional(),
})
export type DelivrPage = z.infer<typeof delivrPageSchema>

/**
 * Where a stream stands: the `since` of the walk in progress, the vendor's cursor within it
 * (null between walks), and the latest time seen, where the next walk starts.
 */
export const delivrCursorSchema = z.object({
  v: z.literal(1),
  since: z.string(),
  next: z.string().nullable(),
  high: z.string().nullable(),
})
export type DelivrCursor = z.infer<typeof delivrCursorSchema>
