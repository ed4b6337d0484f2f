/**
 * The agent's environment: where its data lives, which Postgres it uses, and which extra
 * connector modules it loads. Read once per process by the CLI (and later the app's agent).
 */
import { access } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { z } from 'zod'
import { createDb, type DbHandle } from '../db/client.js'
import { startEmbeddedPostgres } from '../db/embedded.js'
import { migrateDatabase } from '../db/migrate.js'
import { AppError, ConfigError, DbError, describeError } from '../shared/errors.js'
import type { Logger } from './logging/logger.js'
import { runsFromSource } from './layout.js'

export type Env = Record<string, string | undefined>

/** The environment variables the agent reads (besides CONNECTOR_ENCRYPTION_KEY* and LOG_LEVEL). */
export const agentEnvSchema = z.object({
  DATABASE_URL: z
    .string()
    .trim()
    .regex(/^postgres(ql)?:\/\/\S+$/, 'must be a postgres:// or postgresql:// URL')
    .optional(),
  GTM_DATA_DIR: z.string().trim().min(1).optional(),
  GTM_CONNECTOR_MODULES: z.string().optional(),
})
export type AgentEnv = z.infer<typeof agentEnvSchema>

/** A database the agent can work in, and how to let go of it. */
export interface OpenedDatabase {
  handle: DbHandle
  /** Owner URL (migrations run as this user). Contains a password: never log it. */
  url: string
  /** True when the database is the embedded one under the data directory. */
  embedded: boolean
  /** Closes the pool, then stops the embedded server if this process started it. */
  close(): Promise<void>
}

/** A database server located (and, if embedded, started) but not yet opened. */
export interface LocatedDatabase {
  url: string
  embedded: boolean
  /** Stops the embedded server if this process started it; otherwise does nothing. */
  stop(): Promise<void>
}

/** Parses the agent's environment variables; a bad value throws naming the variable. */
export function readAgentEnv(env: Env = process.env): AgentEnv {
  // Empty strings mean "unset": `DATABASE_URL= gtm-agent ...` should not be an error.
  const present = Object.fromEntries(
    Object.entries(env).filter(([, value]) => value !== undefined && value.trim() !== ''),
  )
  const result = agentEnvSchema.safeParse(present)
  if (result.success) return result.data
  const issue = result.error.issues[0]
  const name = String(issue?.path[0] ?? 'environment')
  // The value is not shown: DATABASE_URL carries a password.
  throw new ConfigError('config_invalid', `${name} ${issue?.message ?? 'is invalid'}.`)
}

/**
 * The agent's data directory: GTM_DATA_DIR; else /var/lib/gtm-clarity-connect for root (the
 * embedded Postgres then runs as the `postgres` user, who cannot enter root's home); else
 * `$XDG_DATA_HOME/gtm-clarity-connect`, defaulting to ~/.local/share.
 */
export function dataDir(env: Env = process.env): string {
  const explicit = readAgentEnv(env).GTM_DATA_DIR
  if (explicit) return path.resolve(explicit)
  if (process.getuid?.() === 0) return '/var/lib/gtm-clarity-connect'
  const xdg = env.XDG_DATA_HOME?.trim()
  // The XDG spec says relative values are invalid and must be ignored.
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.local', 'share')
  return path.join(base, 'gtm-clarity-connect')
}

/**
 * Finds the database server: DATABASE_URL when set, else the embedded Postgres under the data
 * directory, started (or joined, when another agent process already runs it). Nothing migrates.
 */
export async function locateDatabase(options: {
  env?: Env
  log: Logger
}): Promise<LocatedDatabase> {
  const env = options.env ?? process.env
  const url = readAgentEnv(env).DATABASE_URL
  if (url) return { url, embedded: false, stop: () => Promise.resolve() }
  const dir = dataDir(env)
  options.log.debug({ dataDir: dir }, 'starting the embedded Postgres')
  const server = await startEmbeddedPostgres({
    dataDir: dir,
    onLog: (line) => {
      if (line) options.log.debug({ postgres: line }, 'embedded postgres')
    },
  })
  return { url: server.url, embedded: true, stop: () => server.stop() }
}

/**
 * Opens the agent's database. With DATABASE_URL, nothing is migrated (run `gtm-agent migrate`);
 * the embedded database is migrated on open, since nobody else would.
 */
export async function openDatabase(options: { env?: Env; log: Logger }): Promise<OpenedDatabase> {
  const located = await locateDatabase(options)
  if (located.embedded) {
    try {
      const { applied } = await migrateDatabase(located.url)
      if (applied > 0) options.log.info({ applied }, 'migrated the embedded database')
    } catch (err) {
      await located.stop().catch(() => undefined)
      throw err
    }
  }
  const handle = createDb(located.url)
  try {
    await handle.pool.query('select 1')
  } catch (cause) {
    await handle.close().catch(() => undefined)
    await located.stop().catch(() => undefined)
    throw unreachable(cause, located.embedded)
  }
  return {
    handle,
    url: located.url,
    embedded: located.embedded,
    close: async () => {
      try {
        await handle.close()
      } finally {
        await located.stop()
      }
    },
  }
}

/**
 * Imports the built-in connectors, then every module listed in GTM_CONNECTOR_MODULES
 * (comma-separated paths, relative to `cwd`), so that each registers its connector.
 * Returns the absolute paths of the extra modules loaded.
 */
export async function loadConnectorModules(
  env: Env = process.env,
  cwd = process.cwd(),
): Promise<string[]> {
  await import('./connectors/index.js')
  const list = readAgentEnv(env).GTM_CONNECTOR_MODULES ?? ''
  const paths = list
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '')
  const loaded: string[] = []
  for (const entry of paths) {
    const absolute = path.resolve(cwd, entry)
    try {
      await access(absolute)
    } catch {
      throw new ConfigError(
        'config_invalid',
        `GTM_CONNECTOR_MODULES lists "${entry}", but ${absolute} does not exist.`,
      )
    }
    if (!runsFromSource && /\.[cm]?ts$/i.test(absolute)) {
      // It would import the agent's TypeScript sources: a second registry the build never reads.
      throw new ConfigError(
        'config_invalid',
        `GTM_CONNECTOR_MODULES lists "${entry}", a TypeScript module: the built agent loads JavaScript modules only (run the agent from its sources, with GTM_AGENT_FROM_SOURCE=1, for a TypeScript one).`,
      )
    }
    try {
      await import(pathToFileURL(absolute).href)
    } catch (cause) {
      const code = cause instanceof AppError ? cause.code : 'config_invalid'
      throw new ConfigError(
        code,
        `GTM_CONNECTOR_MODULES lists "${entry}", which failed to load: ${oneLine(describeError(cause))}`,
        { cause },
      )
    }
    loaded.push(absolute)
  }
  return loaded
}

/** A readable "cannot connect" error; pg's messages name host, port or user, never the password. */
function unreachable(cause: unknown, embedded: boolean): DbError {
  const where = embedded ? 'the embedded Postgres' : 'the Postgres at DATABASE_URL'
  const reason = oneLine(describeError(cause)) || 'connection failed'
  // The pool switches to gtm_agent at connect time; that role comes from the migrations.
  const hint = /gtm_agent/.test(reason) ? ' Run `gtm-agent migrate` first.' : ''
  return new DbError('db_unavailable', `Cannot connect to ${where}: ${reason}.${hint}`, { cause })
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim()
}
