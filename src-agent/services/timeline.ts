/**
 * A connection's timeline: its sync runs merged with the audited changes made to it (connect,
 * sign-in, mappings, schedule, writeback settings), newest first. Read-only, inside the tenant's
 * transaction like the other views.
 */
import { and, desc, eq, gte, inArray, lte, notInArray, or, sql, type SQL } from 'drizzle-orm'
import type { Db, Tx } from '../../db/client.js'
import { auditLog, syncRuns } from '../../db/schema/index.js'
import { withTenant } from '../../db/tenant.js'
import { scrubString } from '../../shared/redact.js'
import type { SyncMode } from '../../shared/schemas.js'
import type { AnyConnector } from '../connectors/interface.js'
import type { ConnectorRegistry } from '../connectors/registry.js'
import { streamsOf } from '../connectors/streams.js'
import { findConnection } from '../pipeline/connection.js'
import { requireTenant } from '../pipeline/tenants.js'
import { guard } from './views.js'

export type TimelineType = 'run' | 'config' | 'mapping' | 'signin' | 'schedule' | 'writeback'

export interface TimelineEntry {
  id: string
  type: TimelineType
  at: string
  title: string
  /** Who did it; null for a run the schedule (the agent itself) started. */
  userId: string | null
  run: {
    runId: string
    status: string
    mode: SyncMode
    stream: string | null
    records: number
    durationMs: number | null
    error: string | null
  } | null
}

export interface TimelineQuery {
  tenantId: string
  connectorType: string
  /** Only these kinds of entry (default: all). */
  types?: TimelineType[] | undefined
  /** ISO times; both ends included. */
  from?: string | undefined
  to?: string | undefined
  limit: number
}

/** The connection's runs and audited changes, newest first; other connections' rows never show. */
export async function listTimeline(
  db: Db,
  registry: ConnectorRegistry,
  query: TimelineQuery,
): Promise<TimelineEntry[]> {
  const connector = registry.get(query.connectorType)
  const wanted = new Set<TimelineType>(query.types ?? TIMELINE_TYPES)
  return guard('reading the connection timeline', () =>
    withTenant(db, query.tenantId, async (tx) => {
      await requireTenant(tx, query.tenantId)
      const row = await findConnection(tx, query.tenantId, connector.id)
      if (!row) return []
      const runs = wanted.has('run') ? await runEntries(tx, row.id, query) : []
      const changes = [...wanted].some((t) => t !== 'run')
        ? await changeEntries(tx, connector, query, wanted)
        : []
      return [...runs, ...changes]
        .sort((a, b) => b.at.localeCompare(a.at) || b.id.localeCompare(a.id))
        .slice(0, query.limit)
    }),
  )
}

// --- implementation ---

const TIMELINE_TYPES: TimelineType[] = [
  'run',
  'config',
  'mapping',
  'signin',
  'schedule',
  'writeback',
]

const RUN_TITLES: Record<string, string> = {
  succeeded: 'Sync succeeded',
  failed: 'Sync failed',
  paused: 'Sync paused: API quota used up',
  running: 'Sync running',
}

async function runEntries(
  tx: Tx,
  connectorId: string,
  query: TimelineQuery,
): Promise<TimelineEntry[]> {
  const runs = await tx
    .select()
    .from(syncRuns)
    .where(
      and(
        eq(syncRuns.connectorId, connectorId),
        query.from !== undefined ? gte(syncRuns.startedAt, new Date(query.from)) : undefined,
        query.to !== undefined ? lte(syncRuns.startedAt, new Date(query.to)) : undefined,
      ),
    )
    .orderBy(desc(syncRuns.startedAt))
    .limit(query.limit)
  // Who started each run: its sync.trigger audit row ('system' when the schedule did).
  const triggers =
    runs.length === 0
      ? []
      : await tx
          .select({ runId: sql<string>`${auditLog.metadata}->>'runId'`, userId: auditLog.userId })
          .from(auditLog)
          .where(
            and(
              eq(auditLog.tenantId, query.tenantId),
              eq(auditLog.action, 'sync.trigger'),
              inArray(
                sql`${auditLog.metadata}->>'runId'`,
                runs.map((r) => r.id),
              ),
            ),
          )
  const startedBy = new Map(triggers.map((t) => [t.runId, t.userId]))
  return runs.map((run) => {
    const by = startedBy.get(run.id)
    return {
      id: `run:${run.id}`,
      type: 'run',
      at: run.startedAt.toISOString(),
      title: RUN_TITLES[run.status] ?? `Sync ${run.status}`,
      userId: by === undefined || by === 'system' ? null : by,
      run: {
        runId: run.id,
        status: run.status,
        mode: run.mode,
        stream: run.stream,
        records: run.created + run.updated + run.deleted,
        durationMs: run.finishedAt ? run.finishedAt.getTime() - run.startedAt.getTime() : null,
        error: run.error === null ? null : scrubString(run.error),
      },
    }
  })
}

/** The audit actions each kind of entry stands for. */
const ACTIONS: Record<Exclude<TimelineType, 'run'>, string[]> = {
  config: ['connector.create', 'connector.update', 'connector.disconnect', 'agreement.accept'],
  signin: ['connector.create', 'connector.update'],
  mapping: ['mapping.update', 'mapping.reset'],
  schedule: [
    'schedule.create',
    'schedule.update',
    'schedule.pause',
    'schedule.resume',
    'schedule.delete',
  ],
  writeback: ['writeback.config'],
}

type AuditRow = typeof auditLog.$inferSelect

async function changeEntries(
  tx: Tx,
  connector: AnyConnector,
  query: TimelineQuery,
  wanted: Set<TimelineType>,
): Promise<TimelineEntry[]> {
  const actions = [
    ...new Set(
      Object.entries(ACTIONS).flatMap(([type, list]) =>
        wanted.has(type as TimelineType) ? list : [],
      ),
    ),
  ]
  const rows = await tx
    .select()
    .from(auditLog)
    .where(
      and(
        eq(auditLog.tenantId, query.tenantId),
        inArray(auditLog.action, actions),
        // Every change to a connection names its connector type; an accepted agreement names
        // it in its `after`.
        or(
          sql`${auditLog.metadata}->>'connectorType' = ${connector.id}`,
          and(
            eq(auditLog.action, 'agreement.accept'),
            sql`${auditLog.changes}->'after'->>'connector' = ${connector.id}`,
          ),
        ),
        signInFilter(wanted),
        query.from !== undefined ? gte(auditLog.createdAt, new Date(query.from)) : undefined,
        query.to !== undefined ? lte(auditLog.createdAt, new Date(query.to)) : undefined,
      ),
    )
    .orderBy(desc(auditLog.createdAt))
    .limit(query.limit)
  return rows.flatMap((row) => {
    const entry = describeChange(connector, row)
    return entry && wanted.has(entry.type)
      ? [
          {
            id: `audit:${row.id}`,
            type: entry.type,
            at: row.createdAt.toISOString(),
            title: entry.title,
            userId: row.userId,
            run: null,
          },
        ]
      : []
  })
}

/** A connect through the browser sign-in is a sign-in entry; any other connect is config. */
function signInFilter(wanted: Set<TimelineType>): SQL | undefined {
  const via = sql`coalesce(${auditLog.metadata}->>'via', '')`
  if (wanted.has('config') && !wanted.has('signin')) {
    return or(notInArray(auditLog.action, ACTIONS.signin), sql`${via} <> 'sign-in'`)
  }
  if (wanted.has('signin') && !wanted.has('config')) {
    return or(notInArray(auditLog.action, ACTIONS.signin), sql`${via} = 'sign-in'`)
  }
  return undefined
}

function describeChange(
  connector: AnyConnector,
  row: AuditRow,
): { type: TimelineType; title: string } | undefined {
  const name = connector.name
  const meta = row.metadata
  const after = (row.changes.after ?? {}) as Record<string, unknown>
  const signIn = meta['via'] === 'sign-in'
  switch (row.action) {
    case 'connector.create':
      return signIn
        ? { type: 'signin', title: `Signed in to ${name}` }
        : { type: 'config', title: `Connected ${name}` }
    case 'connector.update':
      return signIn
        ? { type: 'signin', title: `Signed in to ${name} again` }
        : { type: 'config', title: `Reconnected ${name} with new settings` }
    case 'connector.disconnect':
      return { type: 'config', title: `Disconnected ${name}` }
    case 'agreement.accept':
      return {
        type: 'config',
        title: `Accepted the ${connector.requiredAgreement?.name ?? 'terms'}`,
      }
    case 'mapping.update':
      return { type: 'mapping', title: `Mapping of ${mappedData(connector, meta)} changed` }
    case 'mapping.reset':
      return {
        type: 'mapping',
        title: `Mapping of ${mappedData(connector, meta)} reset to the defaults`,
      }
    case 'schedule.create':
      return { type: 'schedule', title: `Schedule created: ${cronOf(after)}` }
    case 'schedule.update':
      return { type: 'schedule', title: `Schedule changed to ${cronOf(after)}` }
    case 'schedule.pause':
      return { type: 'schedule', title: 'Schedule paused' }
    case 'schedule.resume':
      return { type: 'schedule', title: 'Schedule resumed' }
    case 'schedule.delete':
      return { type: 'schedule', title: 'Schedule deleted' }
    case 'writeback.config': {
      const what = ENTITY_LABELS[String(meta['entityType'])] ?? 'records'
      const title =
        after['enabled'] === true
          ? `Writeback of ${what} turned on`
          : after['enabled'] === false
            ? `Writeback of ${what} turned off`
            : `Writeback of ${what} changed`
      return { type: 'writeback', title }
    }
    default:
      return undefined
  }
}

const ENTITY_LABELS: Record<string, string> = {
  person: 'people',
  account: 'accounts',
  activity: 'activities',
}

/** "Contacts" for a stream's mapping, else the entity type ("people"). */
function mappedData(connector: AnyConnector, meta: Record<string, unknown>): string {
  const stream = typeof meta['stream'] === 'string' ? meta['stream'] : undefined
  const named = stream ? streamsOf(connector).find((s) => s.id === stream)?.name : undefined
  return named ?? stream ?? ENTITY_LABELS[String(meta['entityType'])] ?? 'records'
}

function cronOf(after: Record<string, unknown>): string {
  return typeof after['cron'] === 'string' ? after['cron'] : 'a new cron'
}
