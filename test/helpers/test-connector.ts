import { z } from 'zod'
import type {
  Connector,
  Credentials,
  WebhookCapability,
} from '../../src-agent/connectors/interface.js'
import { probeHealth, vendorJson } from '../../src-agent/connectors/http.js'
import { connectorRegistry } from '../../src-agent/connectors/registry.js'
import { checkHmacSignature } from '../../src-agent/connectors/webhook-signing.js'
import type { EntityType, FieldMapping, SourceRecord } from '../../shared/schemas.js'
import type { FakeRecord } from '../fakes/pager.js'

/**
 * One try per call: this connector stands for a source whose failures the pipeline and the
 * Temporal workflows must handle themselves, so its HTTP client does not absorb them by retrying.
 */
const ONE_ATTEMPT = { maxAttempts: 1 }

/**
 * A connector for the loopback change-feed fake (test/fakes/pager.ts). Loaded into the CLI
 * with GTM_CONNECTOR_MODULES, it drives the real pipeline end to end.
 */
export const testPagesConfigSchema = z.object({
  baseUrl: z.string().url(),
  apiKey: z.string().min(8),
  pageSize: z.number().int().positive().max(1000).optional(),
  /** Signs the fake's webhooks (test/fakes/pager-webhooks.ts); webhooks are refused without it. */
  webhookSigningKey: z.string().min(16).optional(),
})
export type TestPagesConfig = z.infer<typeof testPagesConfigSchema>

interface FeedPage {
  records: FakeRecord[]
  nextAfter: number
  hasMore: boolean
}

const credentialsSchema = z.object({
  baseUrl: z.string(),
  apiKey: z.string(),
  pageSize: z.number().optional(),
})

const defaults: Record<EntityType, FieldMapping[]> = {
  person: [
    { sourceField: 'id', targetField: 'externalId', transform: 'none' },
    { sourceField: 'email', targetField: 'email', transform: 'trim' },
    { sourceField: 'first_name', targetField: 'firstName', transform: 'none' },
    { sourceField: 'last_name', targetField: 'lastName', transform: 'none' },
    { sourceField: 'title', targetField: 'title', transform: 'none' },
    { sourceField: 'phone', targetField: 'phone', transform: 'none' },
    { sourceField: 'company.id', targetField: 'accountExternalId', transform: 'none' },
  ],
  account: [
    { sourceField: 'id', targetField: 'externalId', transform: 'none' },
    { sourceField: 'name', targetField: 'name', transform: 'trim', required: true },
    { sourceField: 'website', targetField: 'domain', transform: 'lowercase' },
    { sourceField: 'industry', targetField: 'industry', transform: 'none' },
    { sourceField: 'employees', targetField: 'employeeCount', transform: 'none' },
    { sourceField: 'revenue', targetField: 'annualRevenue', transform: 'none' },
  ],
  activity: [
    { sourceField: 'id', targetField: 'externalId', transform: 'none' },
    { sourceField: 'type', targetField: 'type', transform: 'none' },
    { sourceField: 'channel', targetField: 'channel', transform: 'none' },
    { sourceField: 'occurred_at', targetField: 'occurredAt', transform: 'none' },
    { sourceField: 'person_id', targetField: 'personExternalId', transform: 'none' },
    { sourceField: 'details.subject', targetField: 'properties.subject', transform: 'none' },
    { sourceField: 'details.score', targetField: 'properties.score', transform: 'none' },
  ],
}

/**
 * One webhook event of the fake (test/fakes/pager-webhooks.ts), signed like Customer.io's: the
 * hex HMAC-SHA256 of `v0:<X-CIO-Timestamp>:<raw body>` in X-CIO-Signature, 300 s tolerance.
 */
const webhookBodySchema = z.object({
  event_id: z.string().min(1).max(200),
  event_type: z.string().min(1).max(200),
  timestamp: z.number().int().nonnegative(),
  stream: z.string().min(1).max(200).optional(),
  records: z.array(
    z.looseObject({
      kind: z.enum(['person', 'account', 'activity']),
      id: z.string(),
      updatedAt: z.string().optional(),
      deleted: z.boolean().optional(),
    }),
  ),
})

const testWebhooks: WebhookCapability = {
  maxBodyBytes: 64 * 1024,
  signingKeyConfigKey: 'webhookSigningKey',
  verify(request, credentials) {
    return checkHmacSignature({
      key: credentials.webhookSigningKey,
      timestamp: request.headers['x-cio-timestamp'],
      signature: request.headers['x-cio-signature'],
      signed: (timestamp) => [`v0:${timestamp}:`, request.rawBody],
      receivedAt: request.receivedAt,
    })
  },
  parse(rawBody) {
    let json: unknown
    try {
      json = JSON.parse(rawBody.toString('utf8'))
    } catch {
      return { ok: false, reason: 'the body is not JSON' }
    }
    const parsed = webhookBodySchema.safeParse(json)
    if (!parsed.success) {
      const issue = parsed.error.issues[0]
      const at = issue?.path.length ? issue.path.join('.') : 'body'
      return { ok: false, reason: `${at}: ${issue?.message ?? 'invalid'}` }
    }
    const body = parsed.data
    return {
      ok: true,
      events: [
        {
          eventId: body.event_id,
          type: body.event_type,
          occurredAt: new Date(body.timestamp * 1000),
          ...(body.stream ? { stream: body.stream } : {}),
          payload: json as Record<string, unknown>,
          records: body.records.map((r) => ({
            entityType: r.kind,
            data: r,
            ...(r.updatedAt ? { modifiedAt: r.updatedAt } : {}),
            ...(r.deleted ? { deleted: true } : {}),
          })),
        },
      ],
    }
  },
}

export const testConnector: Connector<TestPagesConfig> = {
  id: 'test-pages',
  name: 'Test pages',
  version: '1.0.0',
  authMethod: 'api_key',
  dataTypes: ['person', 'account', 'activity'],
  configSchema: testPagesConfigSchema,
  secretConfigKeys: ['apiKey', 'webhookSigningKey'],

  async authenticate(config, options) {
    await vendorJson(`${config.baseUrl}/health`, {
      vendor: 'Test pages',
      retry: ONE_ATTEMPT,
      headers: { authorization: `Bearer ${config.apiKey}` },
      ...(options?.signal ? { signal: options.signal } : {}),
    })
    return { credentials: { ...config } }
  },

  async sync(credentials, cursor, options) {
    const creds = parseCredentials(credentials)
    const after = cursor === null ? 0 : Number(cursor)
    const limit = options?.pageSize ?? creds.pageSize ?? 100
    const headers = { authorization: `Bearer ${creds.apiKey}` }
    // Deliberately logs the whole request, headers included: the logger must redact it.
    options?.log?.debug({ url: `${creds.baseUrl}/records`, headers, credentials }, 'fetching page')
    const page = await vendorJson<FeedPage>(
      `${creds.baseUrl}/records?after=${after}&limit=${limit}`,
      {
        vendor: 'Test pages',
        retry: ONE_ATTEMPT,
        headers,
        ...(options?.signal ? { signal: options.signal } : {}),
      },
    )
    const records: SourceRecord[] = page.records.map((r) => ({
      entityType: r.kind,
      data: r,
      modifiedAt: r.updatedAt,
      ...(r.deleted ? { deleted: true } : {}),
    }))
    return {
      records,
      cursor: String(page.nextAfter),
      hasMore: page.hasMore,
      syncedAt: new Date(),
      stats: { created: 0, updated: 0, errors: 0 },
    }
  },

  getSchema(entityType) {
    return defaults[entityType].map((m) => ({ ...m }))
  },

  healthCheck(credentials, options) {
    const creds = parseCredentials(credentials)
    return probeHealth(
      () =>
        vendorJson(`${creds.baseUrl}/health`, {
          vendor: 'Test pages',
          retry: ONE_ATTEMPT,
          headers: { authorization: `Bearer ${creds.apiKey}` },
          ...(options?.signal ? { signal: options.signal } : {}),
        }),
      'Reachable and authenticated.',
    )
  },

  webhooks: testWebhooks,
}

function parseCredentials(credentials: Credentials): z.infer<typeof credentialsSchema> {
  return credentialsSchema.parse(credentials)
}

if (!connectorRegistry.has(testConnector.id)) connectorRegistry.register(testConnector)
