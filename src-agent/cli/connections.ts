/**
 * `gtm-agent connectors`, `connect`, `disconnect` and `health`: what the agent can run, and the
 * tenant's connections to it. Connecting and disconnecting tell a running Temporal about it.
 */
import type { Command } from 'commander'
import type { DbHandle } from '../../db/client.js'
import { withTenant } from '../../db/tenant.js'
import { AppError, ConfigError, describeError } from '../../shared/errors.js'
import type { ConnectorHealthStatus } from '../../shared/schemas.js'
import { loadConnectorModules } from '../config.js'
import { connectorRegistry } from '../connectors/registry.js'
import { scrubString } from '../../shared/redact.js'
import { loadKeyring } from '../secrets/crypto.js'
import { requireTenant } from '../pipeline/tenants.js'
import { connect, disconnect, health } from '../services/connections.js'
import { DEFAULT_REDIRECT_PORT } from '../signin/loopback.js'
import { notifyConnectionChange, type ConnectionChangeResult } from '../temporal/notify.js'
import { oneLine, readJsonFile, withDatabase, type CliContext } from './context.js'
import { redirectPortOption, signInWithBrowser } from './sign-in.js'

/** Adds `connectors`, `connect <type>` and `disconnect <type>` to the program. */
export function registerConnectionCommands(program: Command, ctx: CliContext): void {
  program
    .command('connectors')
    .description('list the connectors this agent can run')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      await loadConnectorModules(ctx.env)
      const infos = connectorRegistry.describe()
      if (opts.json) return ctx.out.json(infos)
      if (infos.length === 0) return ctx.out.line('No connectors are registered.')
      ctx.out.table(
        ['ID', 'NAME', 'VERSION', 'AUTH', 'DATA TYPES', 'STREAMS'],
        infos.map((c) => [
          c.id,
          c.name,
          c.version,
          c.authMethod,
          c.dataTypes.join(', '),
          c.streams.map((s) => s.id).join(', '),
        ]),
      )
    })

  program
    .command('connect <type>')
    .description('check a config file, authenticate, and store the connection encrypted')
    .requiredOption('--tenant <id>', 'tenant id')
    .requiredOption('--config <file>', 'JSON config file for the connector')
    .option('--browser', 'sign in through a browser; the config file holds no tokens')
    .option(
      '--redirect-port <port>',
      `port of the sign-in callback on 127.0.0.1 (default ${DEFAULT_REDIRECT_PORT})`,
      redirectPortOption,
    )
    .action(async (type: string, opts: ConnectOptions) => {
      const keyring = loadKeyring(ctx.env)
      await loadConnectorModules(ctx.env)
      const connector = connectorRegistry.get(type)
      if (opts.redirectPort !== undefined && !opts.browser)
        throw new ConfigError('config_invalid', '--redirect-port is only used with --browser.')
      const fileJson = await readJsonFile(opts.config, 'config file')
      await withDatabase(ctx, async (handle) => {
        const { db } = handle
        // The tenant is checked first, so nobody signs in for nothing.
        if (opts.browser) await withTenant(db, opts.tenant, (tx) => requireTenant(tx, opts.tenant))
        const configJson = opts.browser
          ? await signInWithBrowser({
              connector,
              configJson: fileJson,
              redirectPort: opts.redirectPort,
              env: ctx.env,
              log: ctx.log,
              write: (line) => process.stderr.write(`${line}\n`),
            })
          : fileJson
        const deps = { db, registry: connectorRegistry, keyring, log: ctx.log }
        const result = await connect(deps, {
          tenantId: opts.tenant,
          connectorType: type,
          configJson,
          userId: ctx.userId,
          ...(opts.browser ? { via: 'sign-in' as const } : {}),
        })
        const verb = result.created ? 'Connected' : 'Reconnected'
        if (result.status === 'error') {
          throw new AppError(
            'vendor_unavailable',
            `${verb} ${type} for tenant "${opts.tenant}", but its health check failed: ${result.health.message}`,
          )
        }
        ctx.out.line(
          `${verb} ${type} for tenant "${opts.tenant}" (${describeHealth(result.health)}).`,
        )
        await announceConnectionChange(ctx, handle, opts.tenant, type, 'connected')
      })
    })

  program
    .command('disconnect <type>')
    .description('drop a connection’s credentials (its sync position and mappings are kept)')
    .requiredOption('--tenant <id>', 'tenant id')
    .action(async (type: string, opts: { tenant: string }) => {
      await loadConnectorModules(ctx.env)
      await withDatabase(ctx, async (handle) => {
        const { db } = handle
        await disconnect(
          { db, registry: connectorRegistry },
          { tenantId: opts.tenant, connectorType: type, userId: ctx.userId },
        )
        ctx.out.line(
          `Disconnected ${type} for tenant "${opts.tenant}"; its credentials were deleted.`,
        )
        await announceConnectionChange(ctx, handle, opts.tenant, type, 'disconnected')
      })
    })
}

type ConnectOptions = { tenant: string; config: string; browser?: boolean; redirectPort?: number }

/** Adds `health <type>` to the program. */
export function registerHealthCommand(program: Command, ctx: CliContext): void {
  program
    .command('health <type>')
    .description('check that a connection still reaches its source (exit 1 when it is down)')
    .requiredOption('--tenant <id>', 'tenant id')
    .option('--json', 'print JSON')
    .action(async (type: string, opts: { tenant: string; json?: boolean }) => {
      const keyring = loadKeyring(ctx.env)
      await loadConnectorModules(ctx.env)
      connectorRegistry.get(type)
      await withDatabase(ctx, async ({ db }) => {
        const deps = { db, registry: connectorRegistry, keyring, log: ctx.log }
        const status = await health(deps, { tenantId: opts.tenant, connectorType: type })
        if (opts.json) ctx.out.json(status)
        else
          ctx.out.line(
            `${type} for tenant "${opts.tenant}": ${describeHealth(status)}. ${status.message}`,
          )
        if (status.status === 'down') {
          throw new AppError(
            'vendor_unavailable',
            `${type} for tenant "${opts.tenant}" is down: ${status.message}`,
          )
        }
      })
    })
}

/** The line `connect` prints about the connection's schedule and first sync. */
export function describeConnectionChange(result: ConnectionChangeResult): string | undefined {
  if (!result.scheduled) {
    return 'No Temporal worker found: run `gtm-agent worker` to sync on a schedule (the first sync reads everything).'
  }
  if (result.change === 'disconnected') {
    return result.paused
      ? `Paused its sync schedule (${result.scheduleId}); reconnecting resumes it.`
      : undefined
  }
  const sync =
    result.sync === 'already_running'
      ? `a sync is already running (workflow ${result.workflowId})`
      : `${result.full ? 'a full' : 'an incremental'} sync started (workflow ${result.workflowId})`
  const waiting = result.workerRunning ? '' : ' It runs once a worker is up: `gtm-agent worker`.'
  return `Scheduled ${describeCron(result.cron)}; ${sync}.${waiting}`
}

// --- implementation ---

/** Tells Temporal (when it is already running) about a connection change; never fails the command. */
async function announceConnectionChange(
  ctx: CliContext,
  handle: DbHandle,
  tenantId: string,
  connectorType: string,
  change: 'connected' | 'disconnected',
): Promise<void> {
  try {
    const result = await notifyConnectionChange(
      ctx,
      { tenantId, connectorType, change },
      { handle },
    )
    const line = describeConnectionChange(result)
    if (line && (change === 'connected' || result.scheduled)) ctx.out.line(line)
  } catch (err) {
    const message = err instanceof AppError ? err.userMessage : describeError(err)
    process.stderr.write(`warning: ${oneLine(scrubString(message))}\n`)
  }
}

function describeHealth(status: ConnectorHealthStatus): string {
  return `${status.status}, ${Math.round(status.latencyMs)} ms`
}

/** "every 15 minutes" for the common crons, else the cron itself. */
function describeCron(cron: string): string {
  const minutes = /^\*\/(\d+) \* \* \* \*$/.exec(cron)?.[1]
  if (minutes) return minutes === '1' ? 'every minute' : `every ${minutes} minutes`
  if (cron === '0 * * * *' || cron === '@hourly') return 'every hour'
  return `by the cron "${cron}"`
}
