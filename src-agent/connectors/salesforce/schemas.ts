import { z } from 'zod'
import { DEFAULT_TIMEOUTS } from '../transport.js'

/**
 * The `gtm-agent connect salesforce --config file.json` file. The refresh token comes from the
 * OAuth web-server flow (auth.ts); the stored credentials are this config plus the current
 * access token and instance URL.
 */
export const salesforceConfigSchema = z.object({
  /** The org's API host, e.g. https://acme.my.salesforce.com (the token response's instance_url). */
  instanceUrl: z.url(),
  /** Where OAuth tokens come from: login, test (sandbox) or the org's My Domain. */
  loginUrl: z.url().default('https://login.salesforce.com'),
  clientId: z.string().min(1),
  /** Only when the connected app requires a secret; a desktop (PKCE) app does not. */
  clientSecret: z.string().min(1).optional(),
  refreshToken: z.string().min(1),
  accessToken: z.string().min(1).optional(),
  apiVersion: z
    .string()
    .regex(/^\d{2,3}\.0$/, 'must look like "62.0"')
    .default('62.0'),
  /** Pause a sync once this share of the daily API allowance is used (0–1). */
  quotaThreshold: z.number().gt(0).lte(1).default(0.8),
  /** Objects at least this large are read with Bulk API 2.0 when read from scratch. */
  bulkMinRecords: z.number().int().positive().default(10_000),
  /**
   * The longest wait between two polls of a Bulk job: polls start 100 ms apart and back off to
   * this (bulk.ts, pollDelay).
   */
  bulkPollIntervalMs: z.number().int().positive().default(2_000),
  /** A Bulk job still running after this long is aborted and the run fails (retried later). */
  bulkPollTimeoutMs: z.number().int().positive().default(600_000),
  /**
   * Each pass re-reads what changed this long before the last change it saw: a record's
   * SystemModstamp is set when its transaction writes it, so a long transaction can commit a
   * change stamped before records read by the previous pass. Unchanged re-reads write nothing.
   */
  lookbackSeconds: z.number().int().nonnegative().default(600),
  /** Deadlines of every Salesforce call (REST, Bulk, token): see connectors/transport.ts. */
  connectTimeoutMs: z.number().int().positive().default(DEFAULT_TIMEOUTS.connectTimeoutMs),
  /** Longest silence before the headers or between two chunks of a body. */
  idleTimeoutMs: z.number().int().positive().default(DEFAULT_TIMEOUTS.idleTimeoutMs),
  /** One whole request, a Bulk result page included. */
  requestTimeoutMs: z.number().int().positive().default(DEFAULT_TIMEOUTS.requestTimeoutMs),
})
export type SalesforceConfig = z.infer<typeof salesforceConfigSchema>

/** What a connection stores (encrypted): the config, plus tokens obtained since. */
export type SalesforceCredentials = SalesforceConfig

/** Config keys that hold secrets. */
export const SALESFORCE_SECRET_KEYS = ['clientSecret', 'refreshToken', 'accessToken'] as const

// --- vendor payloads ---

/** POST /services/oauth2/token success. There is no expires_in: the org's session timeout applies. */
export const tokenResponseSchema = z.object({
  access_token: z.string().min(1),
  refresh_token: z.string().min(1).optional(),
  instance_url: z.url(),
  id: z.string().optional(),
  token_type: z.string().optional(),
  issued_at: z.string().optional(),
  scope: z.string().optional(),
})

/** POST /services/oauth2/token failure, e.g. `{"error":"invalid_grant", ...}`. */
export const tokenErrorSchema = z.object({
  error: z.string(),
  error_description: z.string().optional(),
})

/** GET /query, /queryAll and their `nextRecordsUrl` continuations. */
export const queryResultSchema = z.object({
  totalSize: z.number().int().nonnegative(),
  done: z.boolean(),
  nextRecordsUrl: z.string().optional(),
  records: z.array(z.record(z.string(), z.unknown())),
})
export type QueryResult = z.infer<typeof queryResultSchema>

/** GET /sobjects/{type}/describe, the parts we read. */
export const describeSchema = z.object({
  name: z.string(),
  fields: z.array(
    z.object({
      name: z.string(),
      label: z.string().optional(),
      type: z.string(),
      custom: z.boolean().optional(),
      updateable: z.boolean().optional(),
    }),
  ),
})
export type DescribeResult = z.infer<typeof describeSchema>

/** GET /limits, the part we read. */
export const limitsSchema = z.object({
  DailyApiRequests: z.object({ Max: z.number(), Remaining: z.number() }),
})

/** Bulk API 2.0 query job info (create, poll). */
export const jobInfoSchema = z.object({
  id: z.string().min(1),
  state: z.string(),
  createdDate: z.string(),
  numberRecordsProcessed: z.number().int().nonnegative().optional(),
  errorMessage: z.string().optional(),
})
export type JobInfo = z.infer<typeof jobInfoSchema>

/** One entry of an sObject Collections response. */
export const saveResultSchema = z.object({
  id: z.string().nullable().optional(),
  success: z.boolean(),
  errors: z.array(
    z.object({
      statusCode: z.string(),
      message: z.string(),
      fields: z.array(z.string()).optional(),
    }),
  ),
})
export type SaveResult = z.infer<typeof saveResultSchema>
