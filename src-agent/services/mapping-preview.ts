/**
 * The mapping editor's live preview: sample records read from the connection's source (one
 * first page, kept a few minutes so that typing does not call the source), run through the draft
 * mappings and the quality rules by pipeline/mapping-preview.ts. Read-only: no record, cursor or
 * run is written (a token the read refreshed is stored, as every call on a connection does).
 */
import type { Db } from '../../db/client.js'
import { withTenant } from '../../db/tenant.js'
import { ConfigError } from '../../shared/errors.js'
import type { EntityType, FieldMapping, SourceRecord } from '../../shared/schemas.js'
import type { AnyConnector, StreamDefinition } from '../connectors/interface.js'
import type { ConnectorRegistry } from '../connectors/registry.js'
import { findStream, streamsOf } from '../connectors/streams.js'
import type { Logger } from '../logging/logger.js'
import type { Keyring } from '../secrets/crypto.js'
import { requireAgreement } from '../pipeline/agreements.js'
import { openConnectorConnection } from '../pipeline/connection.js'
import { credentialHooks } from '../pipeline/credential-lock.js'
import { previewMappings, type PreviewRow } from '../pipeline/mapping-preview.js'
import { fetchPage, withAllRecords } from '../pipeline/fetch-page.js'
import { requireTenant } from '../pipeline/tenants.js'

/** How long samples are reused unless the editor asks for fresh ones. */
export const SAMPLE_TTL_MS = 5 * 60_000

export interface MappingPreviewDeps {
  db: Db
  registry: ConnectorRegistry
  keyring: Keyring
  log: Logger
  samples: SampleCache
  /** The caller's cancel (and the agent's shutdown): the source read stops. */
  signal?: AbortSignal
}

export interface MappingPreviewInput {
  tenantId: string
  connectorType: string
  entityType: EntityType
  /** Default: the connector's first stream of the entity type. */
  stream?: string | undefined
  /** The draft: a complete mapping list, as the editor holds it. */
  mappings: FieldMapping[]
  limit: number
  /** Read fresh samples instead of the ones kept. */
  refresh?: boolean | undefined
}

export interface MappingPreviewResult {
  fetchedAt: string
  mappingError: string | null
  rows: PreviewRow[]
  accepted: number
  rejected: number
  durationMs: number
}

/** Samples per (tenant, connector, stream), kept in this process only. */
export interface SampleCache {
  get(key: string, now: number): Samples | undefined
  set(key: string, samples: Samples): void
}

export interface Samples {
  fetchedAt: Date
  records: SourceRecord[]
  /** The page size they were read with: a larger limit reads again. */
  pageSize: number
}

/** A cache of samples that forgets them after `ttlMs`, holding at most `maxEntries`. */
export function createSampleCache(
  options: { ttlMs?: number; maxEntries?: number } = {},
): SampleCache {
  const ttlMs = options.ttlMs ?? SAMPLE_TTL_MS
  const maxEntries = options.maxEntries ?? 50
  const entries = new Map<string, Samples>()
  return {
    get(key, now) {
      const hit = entries.get(key)
      if (hit && now - hit.fetchedAt.getTime() < ttlMs) return hit
      entries.delete(key)
      return undefined
    },
    set(key, samples) {
      entries.delete(key)
      entries.set(key, samples)
      // Oldest first: a Map iterates in insertion order.
      while (entries.size > maxEntries) entries.delete(entries.keys().next().value!)
    },
  }
}

/** Reads (or reuses) samples of the stream and previews the draft over them. */
export async function previewConnectionMappings(
  deps: MappingPreviewDeps,
  input: MappingPreviewInput,
): Promise<MappingPreviewResult> {
  const connector = deps.registry.get(input.connectorType)
  const stream = previewStream(connector, input.entityType, input.stream)
  const key = [input.tenantId, connector.id, stream.id].join('\u0000')
  let samples = input.refresh ? undefined : deps.samples.get(key, Date.now())
  if (!samples || samples.pageSize < input.limit) {
    samples = await readSamples(deps, {
      tenantId: input.tenantId,
      connector,
      stream,
      limit: input.limit,
    })
    deps.samples.set(key, samples)
  }
  const started = performance.now()
  const preview = previewMappings({
    entityType: input.entityType,
    records: samples.records,
    mappings: input.mappings,
    limit: input.limit,
  })
  return {
    fetchedAt: samples.fetchedAt.toISOString(),
    ...preview,
    durationMs: performance.now() - started,
  }
}

/**
 * The first page of the stream (of its first partition) from the start, as a first sync would
 * read it, asked for as a sample (no bulk strategy). Nothing is persisted; the terms a connector
 * requires are checked first, as a sync does.
 */
async function readSamples(
  deps: MappingPreviewDeps,
  input: { tenantId: string; connector: AnyConnector; stream: StreamDefinition; limit: number },
): Promise<Samples> {
  const { tenantId, connector, stream } = input
  const opened = await withTenant(deps.db, tenantId, async (tx) => {
    await requireTenant(tx, tenantId)
    await requireAgreement(tx, tenantId, connector)
    return openConnectorConnection(tx, deps.keyring, tenantId, connector)
  })
  const hooks = credentialHooks(
    { handle: { db: deps.db }, keyring: deps.keyring },
    { tenantId, connector, connectorId: opened.row.id },
  )
  let credentials = opened.credentials
  const options = {
    log: deps.log.child({ tenantId, connector: connector.id, stream: stream.id, preview: true }),
    ...(deps.signal ? { signal: deps.signal } : {}),
    credentialLock: hooks.credentialLock,
    onCredentialsChanged: async (next: typeof credentials) => {
      credentials = next
      await hooks.onCredentialsChanged(next)
    },
  }
  let partition: string | undefined
  if (stream.partitioned) {
    const partitions = await connector.listPartitions!(credentials, stream.id, options)
    partition = Array.isArray(partitions) ? partitions[0] : undefined
    // A partitioned stream with no partition (no mailbox yet) has nothing to show.
    if (partition === undefined)
      return { fetchedAt: new Date(), records: [], pageSize: input.limit }
  }
  const page = await fetchPage(connector, credentials, null, {
    ...options,
    stream: stream.id,
    ...(partition !== undefined ? { partition } : {}),
    pageSize: input.limit,
    full: false,
    sample: true,
  })
  return { fetchedAt: new Date(), records: withAllRecords(page).records, pageSize: input.limit }
}

/** The stream asked for, or the connector's first that reads `entityType`. */
function previewStream(
  connector: AnyConnector,
  entityType: EntityType,
  streamId: string | undefined,
): StreamDefinition {
  if (streamId !== undefined) {
    const stream = findStream(connector, streamId)
    if (connector.streams && stream.entityType !== entityType) {
      throw new ConfigError(
        'mapping_invalid',
        `${connector.name}'s stream "${stream.id}" produces ${stream.entityType} records, not ${entityType}.`,
      )
    }
    return stream
  }
  if (!connector.dataTypes.includes(entityType)) {
    throw new ConfigError(
      'mapping_invalid',
      `${connector.name} does not produce ${entityType} records (it produces: ${connector.dataTypes.join(', ')}).`,
    )
  }
  const streams = streamsOf(connector)
  return streams.find((s) => s.entityType === entityType) ?? streams[0]!
}
