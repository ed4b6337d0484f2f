/**
 * The agent's RPC methods (shared/rpc.ts), as plain functions over the services the CLI uses:
 * the same connect, sync, mappings and sign-in, so the desktop app and `gtm-agent` behave alike.
 * Every mutation writes its audit row inside the service, with the app's user.
 */
import { z } from 'zod'
import type { DbHandle } from '../../db/client.js'
import type { CallHandlers } from '../../shared/contract.js'
import { AppError, ConfigError } from '../../shared/errors.js'
import type { AgentRpc } from '../../shared/rpc.js'
import type { ConnectorHealthStatus, ConnectorInfo, EntityType } from '../../shared/schemas.js'
import type { AnyConnector } from '../connectors/interface.js'
import type { ConnectorRegistry } from '../connectors/registry.js'
import type { Env } from '../config.js'
import type { Logger } from '../logging/logger.js'
import { runSync } from '../pipeline/run-sync.js'
import { listTenants } from '../pipeline/tenants.js'
import type { Keyring } from '../secrets/crypto.js'
import { acceptAgreement } from '../services/agreements.js'
import { connect, disconnect, health, sourceFields } from '../services/connections.js'
import { createSampleCache, previewConnectionMappings } from '../services/mapping-preview.js'
import { retryQuarantine } from '../services/quarantine-retry.js'
import { runSetupChecks } from '../services/setup-checks.js'
import { DIAGNOSTICS_DEADLINES, runDiagnostics } from '../services/diagnostics.js'
import { listTimeline } from '../services/timeline.js'
import { listWritebackConfigs, setWritebackConfig } from '../services/writeback-config.js'
import { previewWriteback } from '../services/writeback-preview.js'
import { schedulerDeps, withTemporal } from '../temporal/client.js'
import { probeTemporal } from '../temporal/probe.js'
import {
  describeSchedule,
  ensureSchedule,
  pauseSchedule,
  resumeSchedule,
  type ScheduleView,
} from '../temporal/scheduler.js'
import type { SchedulerDeps } from '../temporal/scheduler.js'
import {
  getMappings,
  resetMappings,
  setMappings,
  type MappingTarget,
} from '../services/mappings.js'
import { createTenant } from '../services/tenants.js'
import {
  listAudit,
  listConnections,
  listQuarantine,
  listRuns,
  schemaVersion,
} from '../services/views.js'
import { parseSignInConfig } from '../signin/config.js'
import {
  DEFAULT_REDIRECT_PATH,
  DEFAULT_SIGN_IN_TIMEOUT_MS,
  signInThroughLoopback,
} from '../signin/loopback.js'

export interface AgentDeps {
  handle: DbHandle
  /** The agent's environment: where Temporal is (TEMPORAL_ADDRESS, or the local dev server). */
  env: Env
  keyring: Keyring
  registry: ConnectorRegistry
  log: Logger
  /** Who the audit log names: `app:<os user>`. */
  userId: string
  version: string
  startedAt: Date
  embeddedDatabase: boolean
  worker: () => { state: 'starting' | 'running' | 'stopped' | 'off'; error: string | null }
  /** Fires on shutdown: a sync stops after the page in hand, a sign-in stops waiting. */
  stop: AbortSignal
  /** Told after a connection is stored or removed (tells Temporal about its schedule). */
  onConnectionChange?: (change: {
    tenantId: string
    connectorType: string
    change: 'connected' | 'disconnected'
  }) => Promise<void>
}

/**
 * How long Diagnostics waits for Temporal to connect, and then for each answer: the 5 s its
 * database queries get (a busy dev server once took over 3 s to describe a schedule).
 */
const TEMPORAL_PROBE_TIMEOUT_MS = DIAGNOSTICS_DEADLINES.queryMs

/** A sign-in in progress: only one at a time, for the loopback port is one. */
let signInRunning: string | undefined

export function createAgentHandlers(deps: AgentDeps): CallHandlers<AgentRpc> {
  const { handle, registry, keyring, log, userId } = deps
  const db = handle.db
  const connectionDeps = { db, registry, keyring, log }
  /** The mapping preview's samples, kept a few minutes per tenant, connector and stream. */
  const samples = createSampleCache()
  const changed = async (
    tenantId: string,
    connectorType: string,
    change: 'connected' | 'disconnected',
  ): Promise<void> => {
    try {
      await deps.onConnectionChange?.({ tenantId, connectorType, change })
    } catch (err) {
      // The connection itself is stored; its schedule catches up at the worker's next reconcile.
      log.warn({ err, tenantId, connectorType }, 'could not tell Temporal about the connection')
    }
  }

  return {
    'agent:info': async () => {
      const memory = process.memoryUsage()
      return {
        version: deps.version,
        pid: process.pid,
        startedAt: deps.startedAt.toISOString(),
        uptimeSeconds: Math.round(process.uptime()),
        memory: { rssBytes: memory.rss, heapUsedBytes: memory.heapUsed },
        database: {
          kind: deps.embeddedDatabase ? 'embedded' : 'external',
          migrations: await schemaVersion(handle),
        },
        worker: deps.worker().state,
        workerError: deps.worker().error,
        encryptionKeyId: keyring.currentKeyId,
      }
    },

    'tenants:list': async () => (await listTenants(db)).map((t) => ({ id: t.id, name: t.name })),

    'tenants:create': async (input) => {
      const tenant = await createTenant(db, { id: input.id, name: input.name, userId })
      return { id: tenant.id, name: tenant.name }
    },

    'connectors:list': () => {
      const infos = new Map(registry.describe().map((info) => [info.id, info]))
      return registry.list().map((c) => describeConnector(c, infos.get(c.id)!))
    },

    'connections:list': (input) => listConnections(db, input.tenantId, registry),

    'connections:connect': async (input) => {
      const result = await connect(connectionDeps, {
        tenantId: input.tenantId,
        connectorType: input.connectorType,
        configJson: input.config,
        userId,
      })
      await changed(input.tenantId, input.connectorType, 'connected')
      return {
        connectionId: result.connectorId,
        status: result.status,
        created: result.created,
        health: healthView(result.health),
      }
    },

    'connections:disconnect': async (input) => {
      await disconnect(connectionDeps, { ...input, userId })
      await changed(input.tenantId, input.connectorType, 'disconnected')
      return { disconnected: true }
    },

    'connections:health': async (input) => healthView(await health(connectionDeps, input)),

    'connections:check': (input, context) =>
      runSetupChecks(
        { db, registry, log },
        { tenantId: input.tenantId, connectorType: input.connectorType, configJson: input.config },
        {
          signal: AbortSignal.any([context.signal, deps.stop]),
          onCheck: (check, index, total) =>
            context.emit('connect:check', {
              tenantId: input.tenantId,
              connectorType: input.connectorType,
              index,
              total,
              check,
            }),
        },
      ),

    'sync:run': async (input, context) => {
      const started = Date.now()
      // The caller's cancel stops after the page in hand (what is committed stays); so does quit.
      const stop = AbortSignal.any([context.signal, deps.stop])
      const summary = await runSync(
        { handle, keyring, registry, log, userId },
        {
          tenantId: input.tenantId,
          connectorType: input.connectorType,
          stop,
          ...(input.stream !== undefined ? { stream: input.stream } : {}),
          ...(input.partition !== undefined ? { partition: input.partition } : {}),
          ...(input.full ? { full: true } : {}),
          ...(input.pageSize !== undefined ? { pageSize: input.pageSize } : {}),
          onProgress: (p) =>
            context.emit('sync:progress', {
              tenantId: input.tenantId,
              connectorType: input.connectorType,
              stream: p.stream ?? null,
              phase: p.phase,
              ...p.streamCounts,
              totals: {
                pages: p.pages,
                created: p.created,
                updated: p.updated,
                deleted: p.deleted,
                errors: p.errors,
              },
              elapsedMs: Date.now() - started,
              expected: p.expected,
            }),
        },
      )
      return {
        status: summary.status,
        mode: summary.mode,
        error: summary.error ?? null,
        pages: summary.pages,
        created: summary.created,
        updated: summary.updated,
        deleted: summary.deleted,
        errors: summary.errors,
        streams: summary.streams,
      }
    },

    'runs:list': (input) => listRuns(db, input),

    'mappings:get': async (input) => ({
      entityType: input.entityType,
      stream: input.stream ?? '',
      ...(await getMappings(db, mappingTarget(input, registry))),
    }),

    'mappings:set': async (input) => ({
      entityType: input.entityType,
      stream: input.stream ?? '',
      ...(await setMappings(db, {
        ...mappingTarget(input, registry),
        mappings: input.mappings,
        userId,
      })),
    }),

    'mappings:reset': async (input) => ({
      entityType: input.entityType,
      stream: input.stream ?? '',
      ...(await resetMappings(db, { ...mappingTarget(input, registry), userId })),
    }),

    'quarantine:list': (input) => listQuarantine(db, input),

    'quarantine:retry': (input) => retryQuarantine({ db, registry }, { ...input, userId }),

    'mappings:preview': (input, context) =>
      previewConnectionMappings(
        { ...connectionDeps, samples, signal: AbortSignal.any([context.signal, deps.stop]) },
        input,
      ),

    'audit:list': (input) => listAudit(db, input),

    'timeline:list': (input) => listTimeline(db, registry, input),

    'diagnostics:run': (input) =>
      runDiagnostics(
        {
          handle,
          registry,
          keyring,
          log,
          worker: deps.worker,
          temporal: (target) =>
            probeTemporal(deps.env, { ...target, timeoutMs: TEMPORAL_PROBE_TIMEOUT_MS }),
        },
        input,
      ),

    'sources:fields': (input) => sourceFields(connectionDeps, input),

    'schedules:get': async (input) => {
      const view = await withSchedules(deps, (scheduler) =>
        describeSchedule(scheduler.client, input),
      )
      return view ? scheduleView(view) : null
    },

    'schedules:set': (input) =>
      withSchedules(deps, async (scheduler) => {
        await ensureSchedule(scheduler, input)
        return scheduleView(await requireSchedule(scheduler, input))
      }),

    'schedules:pause': (input) =>
      withSchedules(deps, async (scheduler) => {
        await pauseSchedule(scheduler, input)
        return scheduleView(await requireSchedule(scheduler, input))
      }),

    'schedules:resume': (input) =>
      withSchedules(deps, async (scheduler) => {
        await resumeSchedule(scheduler, input)
        return scheduleView(await requireSchedule(scheduler, input))
      }),

    'writeback:list': (input) => listWritebackConfigs(db, { ...input, registry }),

    'writeback:set': async (input) => {
      const { changed: _changed, ...view } = await setWritebackConfig(db, {
        tenantId: input.tenantId,
        connectorType: input.connectorType,
        entityType: input.entityType,
        registry,
        userId,
        ...(input.enabled !== undefined ? { enabled: input.enabled } : {}),
        ...(input.fieldMap !== undefined ? { fieldMap: input.fieldMap } : {}),
      })
      return view
    },

    'writeback:preview': (input, context) =>
      previewWriteback(
        { handle, keyring, registry, log },
        { ...input, signal: AbortSignal.any([context.signal, deps.stop]) },
      ),

    'agreements:accept': async (input) => {
      const result = await acceptAgreement(db, { ...input, registry, userId })
      return { acceptedAt: result.acceptedAt.toISOString(), already: result.already }
    },

    'signin:run': async (input, context) => {
      const connector = registry.get(input.connectorType)
      if (signInRunning !== undefined) {
        throw new AppError(
          'signin_in_progress',
          `A ${signInRunning} sign-in is already waiting in the browser: finish or cancel it first.`,
        )
      }
      signInRunning = connector.name
      const state = (data: Record<string, unknown>): void =>
        context.emit('signin:state', { connectorType: connector.id, ...data })
      try {
        const configJson = await signInThroughBrowser(connector, input, context.signal, deps, state)
        state({ phase: 'exchanging' })
        const result = await connect(connectionDeps, {
          tenantId: input.tenantId,
          connectorType: input.connectorType,
          configJson,
          userId,
          via: 'sign-in',
        })
        await changed(input.tenantId, input.connectorType, 'connected')
        state({ phase: 'succeeded' })
        return { connectionId: result.connectorId, status: result.status }
      } catch (err) {
        if (context.signal.aborted) state({ phase: 'cancelled' })
        else
          state({
            phase: 'failed',
            message: err instanceof AppError ? err.userMessage : 'The sign-in failed.',
          })
        throw err
      } finally {
        signInRunning = undefined
      }
    },
  }
}

/** What the connect screen needs to know about a connector: its streams and its config form. */
function describeConnector(
  c: AnyConnector,
  info: ConnectorInfo,
): z.input<AgentRpc['connectors:list']['output']>[number] {
  return {
    ...info,
    configSchema: formSchema(c.configSchema as z.ZodType),
    secretConfigKeys: [...c.secretConfigKeys],
    signIn: c.signIn !== undefined,
    signInSchema: c.signIn ? formSchema(c.signIn.configSchema) : null,
    webhooks: c.webhooks !== undefined,
    writeback: c.writeback !== undefined,
  }
}

/** A config schema as JSON Schema, for the app's forms. */
function formSchema(schema: z.ZodType): Record<string, unknown> {
  try {
    return z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' })
  } catch (err) {
    // A schema JSON Schema cannot express: the form falls back to the key list.
    return { description: `not expressible as JSON Schema: ${String(err)}` }
  }
}

function mappingTarget(
  input: {
    tenantId: string
    connectorType: string
    entityType: EntityType
    stream?: string | undefined
  },
  registry: ConnectorRegistry,
): MappingTarget {
  return {
    tenantId: input.tenantId,
    connectorType: input.connectorType,
    entityType: input.entityType,
    registry,
    ...(input.stream !== undefined ? { stream: input.stream } : {}),
  }
}

/**
 * Runs `fn` against the Temporal the agent is configured for (TEMPORAL_ADDRESS, or the local dev
 * server), as the app's user; schedule changes are audited by the scheduler.
 */
function withSchedules<T>(
  deps: AgentDeps,
  fn: (scheduler: SchedulerDeps) => Promise<T>,
): Promise<T> {
  return withTemporal({ env: deps.env, log: deps.log }, (temporal) =>
    fn(schedulerDeps(deps.userId, deps.handle, temporal)),
  )
}

async function requireSchedule(
  scheduler: SchedulerDeps,
  target: { tenantId: string; connectorType: string },
): Promise<ScheduleView> {
  const view = await describeSchedule(scheduler.client, target)
  if (!view) {
    throw new AppError(
      'internal',
      `The ${target.connectorType} schedule of "${target.tenantId}" vanished.`,
    )
  }
  return view
}

function scheduleView(view: ScheduleView) {
  return {
    scheduleId: view.scheduleId,
    cron: view.cron,
    paused: view.paused,
    note: view.note,
    nextRunAt: view.nextRunAt?.toISOString() ?? null,
    lastRunAt: view.lastRunAt?.toISOString() ?? null,
    running: view.running,
  }
}

function healthView(status: ConnectorHealthStatus): {
  status: ConnectorHealthStatus['status']
  latencyMs: number
  checkedAt: string
  message: string
} {
  return {
    status: status.status,
    latencyMs: status.latencyMs,
    checkedAt: status.checkedAt.toISOString(),
    message: status.message,
  }
}

/**
 * The browser half of a sign-in: listens on the redirect port, tells main the URL to open, and
 * waits for the callback (cancel, quit or the timeout end the wait with the port closed).
 */
async function signInThroughBrowser(
  connector: AnyConnector,
  input: { config: Record<string, unknown>; redirectPort: number; timeoutMs?: number | undefined },
  signal: AbortSignal,
  deps: AgentDeps,
  state: (data: Record<string, unknown>) => void,
): Promise<unknown> {
  const signIn = connector.signIn
  if (!signIn) {
    throw new ConfigError(
      'config_invalid',
      `${connector.name} has no browser sign-in: connect it with its API key instead.`,
    )
  }
  const config = parseSignInConfig(connector, signIn.configSchema, input.config)
  const timeoutMs = input.timeoutMs ?? DEFAULT_SIGN_IN_TIMEOUT_MS
  const both = AbortSignal.any([signal, deps.stop])
  return signInThroughLoopback(signIn, config, {
    vendor: connector.name,
    port: input.redirectPort,
    path: DEFAULT_REDIRECT_PATH,
    timeoutMs,
    signal: both,
    portSetting: 'Settings → Sign-in redirect port',
    open: (url, redirectUri) => {
      state({
        phase: 'waiting',
        url,
        redirectUri,
        expiresAt: new Date(Date.now() + timeoutMs).toISOString(),
      })
    },
    complete: { stop: both, signal: both, log: deps.log },
  })
}
