/**
 * `gtm-agent`: the operator's command line. Results go to stdout, logs (pino) and the single
 * `error: ...` line to stderr. Exit codes: 0 success, 1 failure, 2 usage error.
 * Configured by DATABASE_URL, CONNECTOR_ENCRYPTION_KEY(S_PREVIOUS), GTM_DATA_DIR,
 * GTM_CONNECTOR_MODULES and LOG_LEVEL. Each command group has its own file here; bin/gtm-agent.mjs
 * runs main and exits with its code.
 */
import { Command, CommanderError } from 'commander'
import { AppError, describeError } from '../../shared/errors.js'
import { cliUserId } from '../audit/audit.js'
import type { Env } from '../config.js'
import { agentVersion } from '../layout.js'
import { createLogger, type Logger } from '../logging/logger.js'
import { scrubString } from '../../shared/redact.js'
import { registerConnectionCommands, registerHealthCommand } from './connections.js'
import { oneLine, type CliContext } from './context.js'
import { registerKeyCommands } from './keys.js'
import { registerMappingCommands } from './mappings.js'
import { registerMigrateCommand } from './migrate.js'
import { registerO365Commands } from './o365.js'
import { stdoutOutput } from './output.js'
import { registerScheduleCommands } from './schedules.js'
import { registerStatusCommand } from './status.js'
import { registerSyncCommand } from './sync.js'
import { registerTenantCommands } from './tenants.js'
import { registerWorkerCommand } from './worker.js'
import { registerWebhookCommands } from './webhooks.js'
import { registerWritebackCommands } from './writeback.js'

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

/** The program with every command, in the order `--help` lists them. */
export function buildProgram(ctx: CliContext): Command {
  const program = new Command('gtm-agent')
    .description('GTM Clarity Connect agent: syncs go-to-market data into tenant-scoped Postgres.')
    .version(agentVersion())
    .exitOverride()
    .showSuggestionAfterError()
  registerMigrateCommand(program, ctx)
  registerTenantCommands(program, ctx)
  registerKeyCommands(program, ctx)
  registerConnectionCommands(program, ctx)
  registerSyncCommand(program, ctx)
  registerHealthCommand(program, ctx)
  registerMappingCommands(program, ctx)
  registerWorkerCommand(program, ctx)
  registerStatusCommand(program, ctx)
  registerScheduleCommands(program, ctx)
  registerWritebackCommands(program, ctx)
  registerWebhookCommands(program, ctx)
  registerO365Commands(program, ctx)
  return program
}
