/**
 * How the agent reaches Temporal: TEMPORAL_ADDRESS (with namespace, API key and mTLS for
 * Temporal Cloud or a self-hosted cluster), or, when it is unset, the local dev server under
 * the data directory.
 */
import { readFile } from 'node:fs/promises'
import { Client, Connection, type TLSConfig } from '@temporalio/client'
import { z } from 'zod'
import type { DbHandle } from '../../db/client.js'
import { AppError, ConfigError } from '../../shared/errors.js'
import { TASK_QUEUE } from '../../shared/temporal.js'
import { dataDir, openDatabase, type Env } from '../config.js'
import type { Logger } from '../logging/logger.js'
import { locateDevServer } from './dev-server.js'
import type { SchedulerDeps } from './scheduler.js'

/** The environment variables that configure Temporal. */
export const temporalEnvSchema = z.object({
  TEMPORAL_ADDRESS: z
    .string()
    .trim()
    .regex(/^(\[[0-9a-fA-F:]+\]|[^\s:/]+)(:\d{1,5})?$/, 'must be host:port')
    .optional(),
  TEMPORAL_NAMESPACE: z.string().trim().min(1).optional(),
  TEMPORAL_TASK_QUEUE: z.string().trim().min(1).optional(),
  TEMPORAL_API_KEY: z.string().trim().min(1).optional(),
  TEMPORAL_TLS_CERT: z.string().trim().min(1).optional(),
  TEMPORAL_TLS_KEY: z.string().trim().min(1).optional(),
  TEMPORAL_TLS_CA: z.string().trim().min(1).optional(),
  TEMPORAL_TLS_SERVER_NAME: z.string().trim().min(1).optional(),
  /** Use TLS without a client certificate (a server with a public certificate). */
  TEMPORAL_TLS: z.enum(['true', 'false', '1', '0']).optional(),
})
export type TemporalEnv = z.infer<typeof temporalEnvSchema>

/** Where and how to connect; `address` undefined means the local dev server. */
export interface TemporalSettings {
  address: string | undefined
  namespace: string
  taskQueue: string
  apiKey?: string
  tls?: TLSConfig | boolean
}

/** Parses the Temporal variables and reads the TLS files they name; errors name the variable. */
export async function readTemporalSettings(env: Env = process.env): Promise<TemporalSettings> {
  const present = Object.fromEntries(
    Object.entries(env).filter(([key, value]) => key.startsWith('TEMPORAL_') && value?.trim()),
  )
  const parsed = temporalEnvSchema.safeParse(present)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    // Values are not echoed: TEMPORAL_API_KEY is a secret.
    throw new ConfigError(
      'config_invalid',
      `${String(issue?.path[0] ?? 'A TEMPORAL_ variable')} ${issue?.message ?? 'is invalid'}.`,
    )
  }
  const vars = parsed.data
  if (Boolean(vars.TEMPORAL_TLS_CERT) !== Boolean(vars.TEMPORAL_TLS_KEY)) {
    throw new ConfigError(
      'config_invalid',
      'TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY go together: set both (client certificate and its key) or neither.',
    )
  }
  const settings: TemporalSettings = {
    address: vars.TEMPORAL_ADDRESS,
    namespace: vars.TEMPORAL_NAMESPACE ?? 'default',
    taskQueue: vars.TEMPORAL_TASK_QUEUE ?? TASK_QUEUE,
  }
  if (vars.TEMPORAL_API_KEY) settings.apiKey = vars.TEMPORAL_API_KEY
  const tls = await tlsConfig(vars)
  if (tls !== undefined) settings.tls = tls
  return settings
}

/** A connected client, and how to let go of it (and of the dev server, if this process started it). */
export interface TemporalConnection {
  client: Client
  connection: Connection
  settings: TemporalSettings & { address: string }
  /** True when Temporal is the local dev server under the data directory. */
  embedded: boolean
  close(): Promise<void>
}

/**
 * Connects to TEMPORAL_ADDRESS, or joins (or starts) the local dev server under the data
 * directory when it is unset.
 */
export async function connectTemporal(options: {
  env?: Env
  log: Logger
  /** Keep the local dev server for this process to stop (the worker), even if another started it. */
  ownDevServer?: boolean
}): Promise<TemporalConnection> {
  const env = options.env ?? process.env
  const settings = await readTemporalSettings(env)
  const dev = settings.address
    ? undefined
    : await locateDevServer({
        dataDir: dataDir(env),
        env,
        log: options.log,
        takeOwnership: options.ownDevServer ?? false,
        ...(settings.namespace === 'default' ? {} : { namespaces: [settings.namespace] }),
      })
  const address = settings.address ?? dev!.address
  let connection: Connection
  try {
    connection = await Connection.connect({
      address,
      ...(settings.tls === undefined ? {} : { tls: settings.tls }),
      ...(settings.apiKey ? { apiKey: settings.apiKey } : {}),
    })
  } catch (cause) {
    await dev?.stop()
    throw new AppError(
      'internal',
      `Temporal at ${address} is not reachable. Check TEMPORAL_ADDRESS (and its TLS/API key settings) or unset it to use the local dev server.`,
      { cause },
    )
  }
  return {
    client: new Client({ connection, namespace: settings.namespace }),
    connection,
    settings: { ...settings, address },
    embedded: dev !== undefined,
    close: async () => {
      try {
        await connection.close()
      } finally {
        await dev?.stop()
      }
    },
  }
}

/** Runs `fn` with a Temporal client, then lets go of it. */
export async function withTemporal<T>(
  options: { env?: Env; log: Logger },
  fn: (temporal: TemporalConnection) => Promise<T>,
): Promise<T> {
  const temporal = await connectTemporal(options)
  try {
    return await fn(temporal)
  } finally {
    await temporal.close()
  }
}

/** Whether a worker polls the task queue for workflow tasks. */
export async function hasWorker(temporal: TemporalConnection): Promise<boolean> {
  const { namespace, taskQueue } = temporal.settings
  const response = await temporal.client.workflowService.describeTaskQueue({
    namespace,
    taskQueue: { name: taskQueue },
    taskQueueType: 1, // TASK_QUEUE_TYPE_WORKFLOW
  })
  return (response.pollers ?? []).length > 0
}

/** A workflow started with no worker polling would wait forever: say so instead. */
export async function requireWorker(temporal: TemporalConnection): Promise<void> {
  const { taskQueue } = temporal.settings
  if (!(await hasWorker(temporal))) {
    throw new AppError(
      'config_missing',
      `No worker is serving the task queue "${taskQueue}" on ${temporal.settings.address}. Start one with: gtm-agent worker`,
    )
  }
}

/**
 * Opens the database and Temporal, runs `fn` with the scheduler's dependencies (mutations are
 * audited as `userId`), and lets go of both.
 */
export async function withScheduler<T>(
  options: { env: Env; log: Logger; userId: string },
  fn: (deps: SchedulerDeps, temporal: TemporalConnection) => Promise<T>,
): Promise<T> {
  const database = await openDatabase(options)
  try {
    return await withTemporal(options, (temporal) =>
      fn(schedulerDeps(options.userId, database.handle, temporal), temporal),
    )
  } finally {
    await database.close()
  }
}

/** What the scheduler needs to act on `temporal` for the user `userId`. */
export function schedulerDeps(
  userId: string,
  handle: DbHandle,
  temporal: TemporalConnection,
): SchedulerDeps {
  return { client: temporal.client, taskQueue: temporal.settings.taskQueue, handle, userId }
}

async function tlsConfig(vars: TemporalEnv): Promise<TLSConfig | boolean | undefined> {
  const config: TLSConfig = {}
  if (vars.TEMPORAL_TLS_CERT && vars.TEMPORAL_TLS_KEY) {
    config.clientCertPair = {
      crt: await readTlsFile(vars.TEMPORAL_TLS_CERT, 'TEMPORAL_TLS_CERT'),
      key: await readTlsFile(vars.TEMPORAL_TLS_KEY, 'TEMPORAL_TLS_KEY'),
    }
  }
  if (vars.TEMPORAL_TLS_CA) {
    config.serverRootCACertificate = await readTlsFile(vars.TEMPORAL_TLS_CA, 'TEMPORAL_TLS_CA')
  }
  if (vars.TEMPORAL_TLS_SERVER_NAME) config.serverNameOverride = vars.TEMPORAL_TLS_SERVER_NAME
  if (Object.keys(config).length > 0) return config
  if (vars.TEMPORAL_TLS === 'false' || vars.TEMPORAL_TLS === '0') return false
  // Temporal Cloud takes API keys over TLS only.
  if (vars.TEMPORAL_TLS === 'true' || vars.TEMPORAL_TLS === '1' || vars.TEMPORAL_API_KEY)
    return true
  return undefined
}

async function readTlsFile(file: string, variable: string): Promise<Buffer> {
  try {
    return await readFile(file)
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code
    throw new ConfigError(
      'config_missing',
      `${variable} names ${file}, which cannot be read (${code ?? 'error'}).`,
      { cause },
    )
  }
}
