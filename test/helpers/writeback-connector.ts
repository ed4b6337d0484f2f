import { z } from 'zod'
import type {
  Connector,
  Credentials,
  WritebackResult,
} from '../../src-agent/connectors/interface.js'
import { probeHealth } from '../../src-agent/connectors/http.js'
import { connectorRegistry } from '../../src-agent/connectors/registry.js'
import { VendorError } from '../../shared/errors.js'
import type { EntityType, FieldMapping } from '../../shared/schemas.js'
import { TRANSIENT_STATUS_CODES, type SaveResult } from '../fakes/writeback.js'

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

/** One JSON request to the fake, its failures mapped the way a Salesforce connector maps them. */
async function call(
  creds: Credentials & { baseUrl: string; apiKey: string },
  path: string,
  init: { method?: string; body?: string; signal?: AbortSignal },
): Promise<unknown> {
  let res: Response
  try {
    res = await fetch(`${creds.baseUrl}${path}`, {
      method: init.method ?? 'GET',
      headers: { authorization: `Bearer ${creds.apiKey}`, 'content-type': 'application/json' },
      ...(init.body === undefined ? {} : { body: init.body }),
      ...(init.signal ? { signal: init.signal } : {}),
    })
  } catch (cause) {
    throw new VendorError('vendor_unavailable', `${VENDOR} could not be reached.`, {
      cause,
      retryable: true,
    })
  }
  const text = await res.text()
  if (res.status === 403 && text.includes('REQUEST_LIMIT_EXCEEDED')) {
    throw new VendorError(
      'vendor_quota_exhausted',
      `${VENDOR}'s daily API request limit is used up.`,
      { retryable: false },
    )
  }
  if (res.status === 401 || res.status === 403) {
    throw new VendorError(
      'vendor_auth_failed',
      `${VENDOR} rejected the credentials (HTTP ${res.status}). Reconnect ${VENDOR}.`,
      { retryable: false },
    )
  }
  if (res.status === 429) {
    const seconds = Number(res.headers.get('retry-after') ?? '1')
    throw new VendorError('vendor_rate_limited', `${VENDOR} is throttling requests (HTTP 429).`, {
      retryable: true,
      retryAfterMs: seconds * 1000,
    })
  }
  if (res.status >= 500) {
    throw new VendorError(
      'vendor_unavailable',
      `${VENDOR} answered HTTP ${res.status}; it will be retried.`,
      { retryable: true },
    )
  }
  if (!res.ok) {
    throw new VendorError(
      'vendor_bad_response',
      `${VENDOR} refused the request (HTTP ${res.status}).`,
      { retryable: false },
    )
  }
  return JSON.parse(text) as unknown
}

if (!connectorRegistry.has(writebackConnector.id)) connectorRegistry.register(writebackConnector)
