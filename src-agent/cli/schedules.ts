/**
 * `gtm-agent schedule <type>` and `schedules`: a connection's sync schedule in Temporal.
 * Results go to stdout.
 */
import type { Command } from 'commander'
import { AppError, ConfigError } from '../../shared/errors.js'
import { syncScheduleId } from '../../shared/temporal.js'
import { loadConnectorModules } from '../config.js'
import { connectorRegistry } from '../connectors/registry.js'
import { withScheduler, withTemporal } from '../temporal/client.js'
import {
  deleteSchedule,
  describeSchedule,
  ensureSchedule,
  listSchedules,
  pauseSchedule,
  resumeSchedule,
  triggerSchedule,
  type ScheduleView,
} from '../temporal/scheduler.js'
import type { CliContext } from './context.js'

/** Adds `schedule <type>` and `schedules` to the program. */
export function registerScheduleCommands(program: Command, ctx: CliContext): void {
  program
    .command('schedule <type>')
    .description(
      'create or change a connection’s sync schedule, or pause, resume, trigger or delete it',
    )
    .requiredOption('--tenant <id>', 'tenant id')
    .option('--cron <expr>', 'when to sync, as a cron expression (default "*/15 * * * *")')
    .option('--pause', 'pause the schedule')
    .option('--resume', 'resume a paused schedule')
    .option('--trigger', 'run a sync now (skipped if one is running)')
    .option('--delete', 'delete the schedule')
    .option('--json', 'print JSON')
    .action(async (type: string, opts: ScheduleOpts) => {
      const verb = scheduleVerb(opts)
      await loadConnectorModules(ctx.env)
      connectorRegistry.get(type)
      await withScheduler(ctx, async (deps) => {
        const target = { tenantId: opts.tenant, connectorType: type }
        if (verb === 'delete') {
          await deleteSchedule(deps, target)
          return ctx.out.line(
            opts.json
              ? JSON.stringify({ scheduleId: syncScheduleId(opts.tenant, type), deleted: true })
              : `Deleted the ${type} sync schedule of tenant "${opts.tenant}".`,
          )
        }
        const ensured = await ensureSchedule(deps, {
          ...target,
          ...(opts.cron === undefined ? {} : { cron: opts.cron }),
        })
        if (verb === 'pause') await pauseSchedule(deps, target)
        if (verb === 'resume') await resumeSchedule(deps, target)
        const triggered = verb === 'trigger' ? await triggerSchedule(deps, target) : undefined
        const view = await describeSchedule(deps.client, target)
        if (!view) throw new AppError('internal', `The schedule ${ensured.scheduleId} vanished.`)
        if (opts.json) {
          return ctx.out.json({
            ...view,
            outcome: ensured.outcome,
            sync: triggered?.outcome ?? null,
          })
        }
        const did =
          triggered?.outcome === 'started'
            ? `Started a sync now (${triggered.workflowId}); schedule`
            : triggered
              ? 'A sync is already running, so none was started; schedule'
              : ensured.outcome === 'created'
                ? 'Created schedule'
                : ensured.outcome === 'updated'
                  ? 'Updated schedule'
                  : 'Schedule'
        ctx.out.line(`${did} ${describeView(view)}`)
      })
    })

  program
    .command('schedules')
    .description('list the sync schedules')
    .option('--tenant <id>', 'only this tenant’s')
    .option('--json', 'print JSON')
    .action(async (opts: { tenant?: string; json?: boolean }) => {
      await withTemporal(ctx, async ({ client }) => {
        const views = await listSchedules(client, opts.tenant ? { tenantId: opts.tenant } : {})
        if (opts.json) return ctx.out.json(views)
        if (views.length === 0)
          return ctx.out.line(
            'No sync schedules yet. Create one with: gtm-agent schedule <type> --tenant <id>',
          )
        ctx.out.table(
          ['TENANT', 'CONNECTOR', 'CRON', 'STATE', 'NEXT RUN', 'LAST RUN'],
          views.map((v) => [
            v.tenantId,
            v.connectorType,
            v.cron ?? '?',
            stateOf(v),
            v.nextRunAt?.toISOString() ?? '-',
            v.lastRunAt?.toISOString() ?? '-',
          ]),
        )
      })
    })
}

// --- implementation ---

interface ScheduleOpts {
  tenant: string
  cron?: string
  pause?: boolean
  resume?: boolean
  trigger?: boolean
  delete?: boolean
  json?: boolean
}

function scheduleVerb(opts: ScheduleOpts): 'pause' | 'resume' | 'trigger' | 'delete' | 'ensure' {
  const verbs = (['pause', 'resume', 'trigger', 'delete'] as const).filter((v) => opts[v])
  if (verbs.length > 1) {
    throw new ConfigError('config_invalid', `Choose one of --${verbs.join(', --')}, not several.`)
  }
  if (verbs[0] === 'delete' && opts.cron !== undefined) {
    throw new ConfigError('config_invalid', '--delete cannot be combined with --cron.')
  }
  return verbs[0] ?? 'ensure'
}

function describeView(v: ScheduleView): string {
  const next = v.paused ? '' : v.nextRunAt ? `, next run ${v.nextRunAt.toISOString()}` : ''
  return `${v.scheduleId}: ${v.cron ?? 'custom spec'}, ${stateOf(v)}${next}.`
}

function stateOf(v: ScheduleView): string {
  return v.paused ? 'paused' : v.running ? 'running' : 'active'
}
