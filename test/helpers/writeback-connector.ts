import { z } from 'zod'
import type {
  Connector,
  Credentials,
  WritebackResult,
} from '../../src-agent/connectors/interface.js'
import { probeHealth, vendorJson } from '../../src-agent/connectors/http.js'
import { connectorRegistry } from '../../src-agent/connectors/registry.js'
import type { CallLabels } from '../../src-agent/telemetry/metrics.js'
import { VendorError } from '../../shared/errors.js'
import type { EntityType, FieldMapping } from '../../shared/schemas.js'
import { TRANSIENT_STATUS_CODES, type SaveResult } from '../fakes/writeback.js'

/**
 * One try per call: this connector stands for a source whose failures the pipeline and the
 * Temporal workflows must handle themselves, so its HTTP client does not absorb them by retrying.
 */
const ONE_ATTEMPT = { maxAttempts: 1 }

/**
 * A connector for the loopback CRM fake (test/fakes/writeback.ts): syncs its account feed and
 * writes field updates back in sObject-Collections-style batches. Loaded into a worker process
 * with GTM_CONNECTOR_MODULES=test/helpers/writeback-connector.ts.
 */
export const testWritebackConfigSchema = z.object({
  baseUrl: z.string().url(),
  apiKey: z.string().min(8),
  pageSize: z.number().int().positive().optional(),
})
export type TestWritebackConfig = z.infer<typeof testWritebackConfigSchema>

const credentialsSchema = testWritebackConfigSchema

const VENDOR = 'Test CRM'

const accountMappings: FieldMapping[] = [
  { sourceField: 'id', targetField: 'externalId', transform: 'none' },
  { sourceField: 'name', targetField: 'name', transform: 'trim', required: true },
]

/** Small on purpose (Salesforce allows 200), so tests see several batches. */
export const WRITEBACK_BATCH_SIZE = 10

export const writebackConnector: Connector<TestWritebackConfig> = {
  id: 'test-writeback',
  name: VENDOR,
  version: '1.0.0',
  authMethod: 'api_key',
  dataTypes: ['account'],
  configSchema: testWritebackConfigSchema,
  secretConfigKeys: ['apiKey'],

  async authenticate(config, options) {
    await call(config, '/health', { ...(options?.signal ? { signal: options.signal } : {}) })
    return { credentials: { ...config } }
  },

  async sync(credentials, cursor, options) {
    const creds = credentialsSchema.parse(credentials)
    const after = cursor === null ? 0 : Number(cursor)
    const limit = options?.pageSize ?? creds.pageSize ?? 100
    const page = (await call(creds, `/records?after=${after}&limit=${limit}`, {
      ...(options?.signal ? { signal: options.signal } : {}),
    })) as { records: Array<Record<string, unknown>>; nextAfter: number; hasMore: boolean }
    return {
      records: page.records.map((r) => ({
        entityType: 'account' as const,
        data: r,
        modifiedAt: String(r.updatedAt),
      })),
      cursor: String(page.nextAfter),
      hasMore: page.hasMore,
      syncedAt: new Date(),
      stats: { created: 0, updated: 0, errors: 0 },
    }
  },

  getSchema(entityType: EntityType) {
    return entityType === 'account' ? accountMappings.map((m) => ({ ...m })) : []
  },

  healthCheck(credentials, options) {
    return probeHealth(
      () =>
        call(credentialsSchema.parse(credentials), '/health', {
          ...(options?.signal ? { signal: options.signal } : {}),
        }),
      'Reachable.',
    )
  },

  writeback: {
    maxBatchSize: WRITEBACK_BATCH_SIZE,
    defaults: {
      account: { enabled: true, fieldMap: [{ canonicalField: 'score', targetField: 'Score__c' }] },
    },
    async send(credentials, items, options) {
      const creds = credentialsSchema.parse(credentials)
      const saved = (await call(creds, '/composite/sobjects', {
        method: 'PATCH',
        body: JSON.stringify({
          allOrNone: false,
          records: items.map((item) => ({
            attributes: { type: item.entityType === 'account' ? 'Account' : 'Contact' },
            id: item.externalId,
            ...item.fields,
          })),
        }),
        ...(options?.signal ? { signal: options.signal } : {}),
        ...(options?.labels ? { labels: options.labels } : {}),
      })) as SaveResult[]
      const results: WritebackResult[] = saved.map((result) => {
        const error = result.errors[0]
        return {
          externalId: result.id,
          ok: result.success,
          ...(error
            ? {
                error: `${error.statusCode}: ${error.message}`,
                retryable: TRANSIENT_STATUS_CODES.includes(error.statusCode),
              }
            : {}),
        }
      })
      return results
    },
  },
}

/**
 * One JSON request to the fake through the product's HTTP client, so its failures are classified
 * by the real rules (vendorJson), plus the one the status alone cannot tell: the fake, like
 * Salesforce, answers an exhausted daily quota with 403 REQUEST_LIMIT_EXCEEDED.
 */
function call(
  creds: Credentials & { baseUrl: string; apiKey: string },
  path: string,
  init: { method?: string; body?: string; signal?: AbortSignal; labels?: CallLabels },
): Promise<unknown> {
  return vendorJson(`${creds.baseUrl}${path}`, {
    vendor: VENDOR,
    retry: ONE_ATTEMPT,
    headers: { authorization: `Bearer ${creds.apiKey}`, 'content-type': 'application/json' },
    ...init,
    classifyError: quotaExhausted,
  })
}

/** Salesforce's error body: `[{ errorCode, message }]`. */
const errorBodySchema = z.array(z.object({ errorCode: z.string() })).min(1)

/** 403 REQUEST_LIMIT_EXCEEDED, read as the Salesforce connector reads it (salesforce/errors.ts). */
function quotaExhausted(response: { status: number; body: string }): VendorError | undefined {
  if (response.status !== 403) return undefined
  let parsed: unknown
  try {
    parsed = JSON.parse(response.body)
  } catch {
    return undefined
  }
  const body = errorBodySchema.safeParse(parsed)
  if (!body.success || body.data[0]?.errorCode !== 'REQUEST_LIMIT_EXCEEDED') return undefined
  return new VendorError(
    'vendor_quota_exhausted',
    `${VENDOR}'s daily API request limit is used up (REQUEST_LIMIT_EXCEEDED).`,
    { retryable: true },
  )
}

if (!connectorRegistry.has(writebackConnector.id)) connectorRegistry.register(writebackConnector)
