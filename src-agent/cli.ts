/**
 * `gtm-agent`: the operator's command line. Results go to stdout, logs (pino) and the single
 * `error: ...` line to stderr. Exit codes: 0 success, 1 failure, 2 usage error.
 * Configured by DATABASE_URL, CONNECTOR_ENCRYPTION_KEY(S_PREVIOUS), GTM_DATA_DIR,
 * GTM_CONNECTOR_MODULES and LOG_LEVEL.
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { Command, CommanderError, Option } from 'commander'
import type { DbHandle } from '../db/client.js'
import { migrateDatabase, migrationsFolder } from '../db/migrate.js'
import { AppError, describeError } from '../shared/errors.js'
import { entityTypes, type ConnectorHealthStatus, type EntityType } from '../shared/schemas.js'
import { cliUserId } from './audit/audit.js'
import { dataDir, loadConnectorModules, locateDatabase, type Env } from './config.js'
import { connectorRegistry } from './connectors/registry.js'
import { createLogger, type Logger } from './logging/logger.js'
import { scrubString } from './logging/redact.js'
import { runSync, type SyncSummary } from './pipeline/run-sync.js'
import { loadKeyring } from './secrets/crypto.js'
import { whileInterruptible } from './shutdown.js'
import { connect, disconnect, health } from './services/connections.js'
import { rotateKeys } from './services/keys.js'
import { getMappings, resetMappings, setMappings, type MappingView } from './services/mappings.js'
import { createTenant, listTenants } from './services/tenants.js'
import {
  describeConnectionChange,
  notifyConnectionChange,
  registerTemporalCommands,
  syncViaTemporal,
} from './temporal/cli-commands.js'
import { stdoutOutput, type CliOutput } from './cli-output.js'
import { registerWritebackCommands } from './cli-writeback.js'
import {
  oneLine,
  plural,
  positiveInt,
  readJsonFile,
  withDatabase,
  type CliContext,
} from './cli-support.js'

/** Runs one command line and returns the exit code. Never throws. */
export async function main(argv: string[], env: Env = process.env): Promise<number> {
  let log: Logger | undefined
  try {
    // A failed command says why in one `error:` line; log lines only when LOG_LEVEL asks for them
    // (a failed sync would otherwise add runSync's own warning).
    log = createLogger(
      env.LOG_LEVEL ? { name: 'gtm-agent' } : { name: 'gtm-agent', level: 'error' },
    )
    await buildProgram({ env, log, userId: cliUserId(env), out: stdoutOutput }).parseAsync(argv)
    return Number(process.exitCode ?? 0)
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2
    log?.debug({ err }, 'command failed')
    const message = err instanceof AppError ? err.userMessage : describeError(err)
    process.stderr.write(`error: ${oneLine(scrubString(message))}\n`)
    return 1
  }
}

// --- commands ---

function buildProgram(ctx: CliContext): Command {
  const program = new Command('gtm-agent')
    .description('GTM Clarity Connect agent: syncs go-to-market data into tenant-scoped Postgres.')
    .version(packageVersion())
    .exitOverride()
    .showSuggestionAfterError()
  addDatabaseCommands(program, ctx)
  addConnectionCommands(program, ctx)
  addMappingCommands(program, ctx)
  registerTemporalCommands(program, ctx)
  registerWritebackCommands(program, ctx)
  return program
}

function addDatabaseCommands(program: Command, ctx: CliContext): void {
  program
    .command('migrate')
    .description('apply pending migrations (to the embedded Postgres when DATABASE_URL is unset)')
    .action(async () => {
      const located = await locateDatabase(ctx)
      try {
        const { applied } = await migrateDatabase(located.url)
        const where = located.embedded
          ? ` (embedded Postgres in ${path.join(dataDir(ctx.env), 'postgres')})`
          : ''
        ctx.out.line(
          applied === 0
            ? `Nothing to apply: the database is up to date${where}.`
            : `Applied ${plural(applied, 'migration')}${where}: ${migrationNames().slice(-applied).join(', ')}`,
        )
      } finally {
        await located.stop()
      }
    })

  const tenants = program.command('tenants').description('create and list tenants')
  tenants
    .command('create <id>')
    .description('create a tenant (id: lower-case letters, digits, "-" and "_")')
    .requiredOption('--name <name>', 'display name')
    .option('--slug <slug>', 'unique short name (defaults to the id)')
    .action((id: string, opts: { name: string; slug?: string }) =>
      withDatabase(ctx, async ({ db }) => {
        const tenant = await createTenant(db, {
          id,
          name: opts.name,
          userId: ctx.userId,
          ...pick(opts, 'slug'),
        })
        ctx.out.line(`Created tenant "${tenant.id}" (${tenant.name}).`)
      }),
    )
  tenants
    .command('list')
    .description('list every tenant')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) =>
      withDatabase(ctx, async ({ db }) => {
        const rows = await listTenants(db)
        if (opts.json) return ctx.out.json(rows)
        if (rows.length === 0)
          return ctx.out.line(
            'No tenants yet. Create one with: gtm-agent tenants create <id> --name "<name>"',
          )
        ctx.out.table(
          ['ID', 'NAME', 'SLUG', 'CREATED'],
          rows.map((t) => [t.id, t.name, t.slug, t.createdAt.toISOString()]),
        )
      }),
    )

  program
    .command('keys')
    .description('manage the credential encryption keys')
    .command('rotate')
    .description(
      're-encrypt stored credentials with CONNECTOR_ENCRYPTION_KEY (older keys in CONNECTOR_ENCRYPTION_KEYS_PREVIOUS)',
    )
    .option('--tenant <id...>', 'only these tenants (default: all)')
    .action(async (opts: { tenant?: string[] }) => {
      const keyring = loadKeyring(ctx.env)
      await withDatabase(ctx, async (handle) => {
        const deps = { handle, keyring, log: ctx.log, userId: ctx.userId }
        const result = await rotateKeys(deps, opts.tenant ? { tenantIds: opts.tenant } : {})
        ctx.out.line(
          `Re-encrypted ${plural(result.rotated, 'credential')} with key ${result.toKeyId}; ` +
            `${result.alreadyCurrent} already used it (${plural(result.tenants, 'tenant')} checked).`,
        )
      })
    })
}

function addConnectionCommands(program: Command, ctx: CliContext): void {
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
        ['ID', 'NAME', 'VERSION', 'AUTH', 'DATA TYPES'],
        infos.map((c) => [c.id, c.name, c.version, c.authMethod, c.dataTypes.join(', ')]),
      )
    })

  program
    .command('connect <type>')
    .description('check a config file, authenticate, and store the connection encrypted')
    .requiredOption('--tenant <id>', 'tenant id')
    .requiredOption('--config <file>', 'JSON config file for the connector')
    .action(async (type: string, opts: { tenant: string; config: string }) => {
      const keyring = loadKeyring(ctx.env)
      await loadConnectorModules(ctx.env)
      connectorRegistry.get(type)
      const configJson = await readJsonFile(opts.config, 'config file')
      await withDatabase(ctx, async (handle) => {
        const { db } = handle
        const deps = { db, registry: connectorRegistry, keyring, log: ctx.log }
        const result = await connect(deps, {
          tenantId: opts.tenant,
          connectorType: type,
          configJson,
          userId: ctx.userId,
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

  program
    .command('sync <type>')
    .description('run one sync now and print its counts')
    .requiredOption('--tenant <id>', 'tenant id')
    .option('--full', 'read everything instead of resuming from the last sync')
    .option('--page-size <n>', 'records per page to ask the source for', positiveInt)
    .option(
      '--via-temporal',
      'run it as the connection’s Temporal workflow (or follow the one running); needs `gtm-agent worker`',
    )
    .option('--json', 'print JSON')
    .action(
      async (
        type: string,
        opts: {
          tenant: string
          full?: boolean
          pageSize?: number
          json?: boolean
          viaTemporal?: boolean
        },
      ) => {
        if (opts.viaTemporal) {
          await syncViaTemporal(ctx, { type, ...opts })
          return
        }
        const keyring = loadKeyring(ctx.env)
        await loadConnectorModules(ctx.env)
        connectorRegistry.get(type)
        await withDatabase(ctx, async (handle) => {
          const summary = await syncWithProgress(ctx, handle, keyring, { type, ...opts })
          if (opts.json) ctx.out.json(summary)
          else printSummary(ctx.out, summary)
          if (summary.status !== 'succeeded') {
            throw new AppError('sync_incomplete', summary.error ?? `The sync ${summary.status}.`)
          }
        })
      },
    )

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

function addMappingCommands(program: Command, ctx: CliContext): void {
  const mappings = program
    .command('mappings')
    .description('show or change how source fields map to canonical fields')
  const target = (command: Command): Command =>
    command
      .requiredOption('--tenant <id>', 'tenant id')
      .addOption(
        new Option('--entity <type>', 'entity type').choices(entityTypes).makeOptionMandatory(),
      )
  type TargetOpts = { tenant: string; entity: EntityType }
  const targetOf = (type: string, opts: TargetOpts) => ({
    tenantId: opts.tenant,
    connectorType: type,
    entityType: opts.entity,
    registry: connectorRegistry,
  })

  target(mappings.command('get <type>').description('print the effective mappings as JSON')).action(
    async (type: string, opts: TargetOpts) => {
      await loadConnectorModules(ctx.env)
      await withDatabase(ctx, async ({ db }) =>
        printMappings(ctx.out, targetOf(type, opts), await getMappings(db, targetOf(type, opts))),
      )
    },
  )

  target(
    mappings.command('set <type>').description('replace the tenant’s overrides with a JSON file'),
  )
    .requiredOption(
      '--file <file>',
      'JSON list of { sourceField, targetField, transform, required? }',
    )
    .action(async (type: string, opts: TargetOpts & { file: string }) => {
      await loadConnectorModules(ctx.env)
      const mappingsJson = await readJsonFile(opts.file, 'mappings file')
      await withDatabase(ctx, async ({ db }) => {
        const input = { ...targetOf(type, opts), mappings: mappingsJson, userId: ctx.userId }
        printMappings(ctx.out, input, await setMappings(db, input))
      })
    })

  target(
    mappings
      .command('reset <type>')
      .description('drop the tenant’s overrides: the connector’s defaults apply'),
  ).action(async (type: string, opts: TargetOpts) => {
    await loadConnectorModules(ctx.env)
    await withDatabase(ctx, async ({ db }) => {
      const result = await resetMappings(db, { ...targetOf(type, opts), userId: ctx.userId })
      ctx.out.line(
        result.removed
          ? `Reset ${type} ${opts.entity} mappings of tenant "${opts.tenant}" to the connector's defaults.`
          : `${type} ${opts.entity} mappings of tenant "${opts.tenant}" had no overrides; the defaults apply.`,
      )
    })
  })
}

// --- helpers ---

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

async function syncWithProgress(
  ctx: CliContext,
  handle: DbHandle,
  keyring: ReturnType<typeof loadKeyring>,
  opts: { type: string; tenant: string; full?: boolean; pageSize?: number },
): Promise<SyncSummary> {
  const tty = process.stderr.isTTY
  let shown = 0
  try {
    // First Ctrl-C: stop after the page in hand (committed work is kept). Second: abort the
    // request in flight and record the cancel. Third: quit now.
    return await whileInterruptible(({ stop, abort }) =>
      runSync(
        { handle, keyring, registry: connectorRegistry, log: ctx.log, userId: ctx.userId },
        {
          tenantId: opts.tenant,
          connectorType: opts.type,
          stop,
          signal: abort,
          ...(opts.full ? { full: true } : {}),
          ...(opts.pageSize ? { pageSize: opts.pageSize } : {}),
          ...(tty
            ? {
                onProgress: (p) => {
                  const line = `${p.phase}: ${p.pages} pages, ${p.created} created, ${p.updated} updated, ${p.deleted} deleted, ${p.errors} errors`
                  process.stderr.write(`\r${line.padEnd(shown)}`)
                  shown = line.length
                },
              }
            : {}),
        },
      ),
    )
  } finally {
    if (tty && shown > 0) process.stderr.write('\n')
  }
}

function printSummary(out: CliOutput, summary: SyncSummary): void {
  const rows: Array<[string, string | number]> = [
    ['run', summary.runId],
    ['status', summary.status],
    ['mode', summary.mode],
    ['pages', summary.pages],
    ['created', summary.created],
    ['updated', summary.updated],
    ['deleted', summary.deleted],
    ['errors', summary.errors],
  ]
  out.line(rows.map(([k, v]) => `${`${k}:`.padEnd(9)}${v}`).join('\n'))
}

function printMappings(
  out: CliOutput,
  target: { tenantId: string; connectorType: string; entityType: EntityType },
  view: MappingView,
): void {
  const overridden = new Set(view.overrides.map((m) => m.targetField))
  out.json({
    tenantId: target.tenantId,
    connectorType: target.connectorType,
    entityType: target.entityType,
    mappings: view.effective.map((m) => ({ ...m, override: overridden.has(m.targetField) })),
  })
}

function describeHealth(status: ConnectorHealthStatus): string {
  return `${status.status}, ${Math.round(status.latencyMs)} ms`
}

function migrationNames(): string[] {
  try {
    const journal = JSON.parse(
      readFileSync(path.join(migrationsFolder, 'meta', '_journal.json'), 'utf8'),
    ) as {
      entries?: Array<{ tag?: string }>
    }
    return (journal.entries ?? []).map((e) => e.tag ?? '?')
  } catch {
    return []
  }
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version?: string
    }
    return pkg.version ?? '0.0.0'
  } catch {
    return '0.0.0'
  }
}

/** `{ key: value }` when the option was given, `{}` otherwise (exactOptionalPropertyTypes). */
function pick<T extends object, K extends keyof T>(obj: T, key: K): Partial<Pick<T, K>> {
  return obj[key] === undefined ? {} : ({ [key]: obj[key] } as Partial<Pick<T, K>>)
}
