/**
 * The CLI's writeback commands: `writeback enqueue`, `writeback run` and `writeback config`.
 * Results go to stdout, progress and warnings to stderr.
 */
import { Option, type Command } from 'commander'
import { AppError, ConfigError, describeError } from '../../shared/errors.js'
import { entityTypes, type EntityType } from '../../shared/schemas.js'
import { WRITEBACK_RETRY } from '../../shared/temporal.js'
import type { CliOutput } from './output.js'
import {
  oneLine,
  plural,
  positiveInt,
  readJsonFile,
  readTextFile,
  withDatabase,
  type CliContext,
} from './context.js'
import { loadConnectorModules } from '../config.js'
import { connectorRegistry } from '../connectors/registry.js'
import { scrubString } from '../../shared/redact.js'
import { writebackConnector, type WritebackConfigView } from '../pipeline/writeback/config.js'
import {
  previewQueuedWriteback,
  type WritebackPreviewReport,
} from '../pipeline/writeback/preview.js'
import { parseWritebackLines, queueWriteback } from '../pipeline/writeback/queue.js'
import { runWriteback, type WritebackRunSummary } from '../pipeline/writeback/send.js'
import { writebackStatus } from '../pipeline/writeback/status.js'
import { loadKeyring } from '../secrets/crypto.js'
import { whileInterruptible } from '../shutdown.js'
import { listWritebackConfigs, setWritebackConfig } from '../services/writeback-config.js'
import { wakeWritebackIfRunning } from '../temporal/notify.js'

/** Adds `writeback enqueue|run|status|config <type>` to the program. */
export function registerWritebackCommands(program: Command, ctx: CliContext): void {
  const writeback = program
    .command('writeback')
    .description('write scores back to a source: queue them, send them, choose the fields')

  writeback
    .command('enqueue <type>')
    .description(
      'queue updates from a JSON Lines file: { "entityType", "externalId", "fields" } a line',
    )
    .requiredOption('--tenant <id>', 'tenant id')
    .requiredOption('--file <file>', 'JSON Lines file of updates')
    .option('--json', 'print JSON')
    .action(async (type: string, opts: { tenant: string; file: string; json?: boolean }) => {
      await loadConnectorModules(ctx.env)
      const { connector } = writebackConnector(connectorRegistry, type)
      const text = await readTextFile(opts.file, 'updates file')
      const items = parseWritebackLines(connector, text)
      if (items.length === 0) {
        throw new ConfigError('record_invalid', `The updates file ${opts.file} holds no updates.`)
      }
      const queued = await withDatabase(ctx, (handle) =>
        queueWriteback(
          { handle, registry: connectorRegistry, userId: ctx.userId },
          { tenantId: opts.tenant, connectorType: type, items },
        ),
      )
      const target = { tenantId: opts.tenant, connectorType: type }
      let wake:
        Awaited<ReturnType<typeof wakeWritebackIfRunning>> | { woken: false; reason: string }
      try {
        wake = await wakeWritebackIfRunning(ctx, target)
      } catch (err) {
        const message = err instanceof AppError ? err.userMessage : describeError(err)
        wake = { woken: false, reason: oneLine(scrubString(message)) }
        process.stderr.write(`warning: could not wake the writeback workflow: ${wake.reason}\n`)
      }
      if (opts.json) return ctx.out.json({ queued: queued.queued, ...wake })
      const runNow = `gtm-agent writeback run ${type} --tenant ${opts.tenant}`
      const next = !wake.woken
        ? `Send them with: ${runNow} (or run \`gtm-agent worker\`, which sends queued updates).`
        : wake.workerRunning
          ? `The writeback workflow ${wake.workflowId} is sending them.`
          : `The writeback workflow ${wake.workflowId} sends them once a worker runs (\`gtm-agent worker\`), or now with: ${runNow}`
      ctx.out.line(
        `Queued ${plural(queued.queued, 'update')} for ${connector.name} of tenant "${opts.tenant}". ${next}`,
      )
    })

  writeback
    .command('run <type>')
    .description(
      'send the queued updates of the enabled entity types now (--dry-run: show current vs new values, write nothing)',
    )
    .requiredOption('--tenant <id>', 'tenant id')
    .option('--dry-run', 'read the current values and show what would change; write nothing')
    .option('--json', 'print JSON')
    .action(async (type: string, opts: { tenant: string; dryRun?: boolean; json?: boolean }) => {
      const keyring = loadKeyring(ctx.env)
      await loadConnectorModules(ctx.env)
      const { connector } = writebackConnector(connectorRegistry, type)
      const target = { tenantId: opts.tenant, connectorType: type }
      await withDatabase(ctx, async (handle) => {
        const deps = { handle, keyring, registry: connectorRegistry, log: ctx.log }
        if (opts.dryRun) {
          const report = await previewQueuedWriteback(deps, target)
          if (opts.json) return ctx.out.json({ dryRun: true, ...report })
          return printPreview(ctx.out, connector.name, type, opts.tenant, report)
        }
        const summary = await whileInterruptible(({ stop, abort }) =>
          runWriteback(deps, {
            ...target,
            ...WRITEBACK_RETRY,
            stop,
            signal: abort,
            ...(process.stderr.isTTY ? { onBatch: showBatchProgress() } : {}),
          }),
        )
        if (process.stderr.isTTY && summary.batches > 0) process.stderr.write('\n')
        if (opts.json) ctx.out.json(summary)
        else printRun(ctx.out, connector.name, type, opts.tenant, summary)
        if (summary.failed > 0) {
          const total = summary.sent + summary.failed + summary.retrying
          throw new AppError(
            'vendor_bad_response',
            `${summary.failed} of ${plural(total, 'update')} could not be written to ${connector.name}.`,
          )
        }
      })
    })

  writeback
    .command('status <type>')
    .description('show the queue: due, waiting, sent and failed updates per entity type')
    .requiredOption('--tenant <id>', 'tenant id')
    .option('--failures <n>', 'how many recent failures to list (default 20)', positiveInt)
    .option('--json', 'print JSON')
    .action(async (type: string, opts: { tenant: string; failures?: number; json?: boolean }) => {
      await loadConnectorModules(ctx.env)
      const { connector } = writebackConnector(connectorRegistry, type)
      const status = await withDatabase(ctx, (handle) =>
        writebackStatus(
          { handle, registry: connectorRegistry },
          { tenantId: opts.tenant, connectorType: type, failures: opts.failures ?? 20 },
        ),
      )
      if (opts.json) return ctx.out.json(status)
      ctx.out.table(
        ['ENTITY', 'WRITEBACK', 'DUE', 'WAITING', 'SENT', 'FAILED', 'LAST SENT'],
        status.entityTypes.map((t) => [
          t.entityType,
          t.enabled ? 'enabled' : 'disabled',
          String(t.due),
          String(t.waiting),
          String(t.sent),
          String(t.failed),
          t.lastSentAt?.toISOString() ?? '-',
        ]),
      )
      if (status.failures.length === 0) return
      ctx.out.line(`\nLatest failures in ${connector.name}:`)
      ctx.out.table(
        ['ENTITY', 'ID', 'ATTEMPTS', 'QUEUED', 'ERROR'],
        status.failures.map((f) => [
          f.entityType,
          f.externalId,
          String(f.attempts),
          f.queuedAt.toISOString(),
          f.error,
        ]),
      )
    })

  writeback
    .command('config <type>')
    .description(
      'show or change which entity types are written back and which fields (--file: [{ "canonicalField", "targetField" }])',
    )
    .requiredOption('--tenant <id>', 'tenant id')
    .addOption(new Option('--entity <type>', 'entity type').choices(entityTypes))
    .addOption(new Option('--enable', 'write this entity type back').conflicts('disable'))
    .option('--disable', 'stop writing this entity type back (its queued updates wait)')
    .option('--file <file>', 'JSON field map: [{ "canonicalField", "targetField" }]')
    .option('--json', 'print JSON')
    .action(
      async (
        type: string,
        opts: {
          tenant: string
          entity?: EntityType
          enable?: boolean
          disable?: boolean
          file?: string
          json?: boolean
        },
      ) => {
        await loadConnectorModules(ctx.env)
        const { connector } = writebackConnector(connectorRegistry, type)
        const changing = opts.enable || opts.disable || opts.file !== undefined
        if (changing && !opts.entity) {
          throw new ConfigError(
            'config_invalid',
            '--enable, --disable and --file need --entity <type>: which entity type to change.',
          )
        }
        const fieldMap = opts.file ? await readJsonFile(opts.file, 'field map file') : undefined
        await withDatabase(ctx, async ({ db }) => {
          if (!changing) {
            const all = await listWritebackConfigs(db, {
              tenantId: opts.tenant,
              connectorType: type,
            })
            const shown = opts.entity ? all.filter((c) => c.entityType === opts.entity) : all
            if (opts.entity && shown.length === 0) {
              throw new ConfigError(
                'config_invalid',
                `${connector.name} cannot write back ${opts.entity} records; it writes back: ${all.map((c) => c.entityType).join(', ')}.`,
              )
            }
            return ctx.out.json(opts.entity ? shown[0] : shown)
          }
          const view = await setWritebackConfig(db, {
            tenantId: opts.tenant,
            connectorType: type,
            entityType: opts.entity!,
            userId: ctx.userId,
            ...(opts.enable ? { enabled: true } : opts.disable ? { enabled: false } : {}),
            ...(fieldMap === undefined ? {} : { fieldMap }),
          })
          if (opts.json) return ctx.out.json(view)
          ctx.out.line(describeConfig(connector.name, opts.tenant, view))
        })
      },
    )
}

// --- implementation ---

function showBatchProgress(): (totals: WritebackRunSummary) => void {
  let shown = 0
  return (totals) => {
    const line = `writeback: ${plural(totals.batches, 'batch', 'batches')}, ${totals.sent} sent, ${totals.failed} failed, ${totals.retrying} to retry`
    process.stderr.write(`\r${line.padEnd(shown)}`)
    shown = line.length
  }
}

function printRun(
  out: CliOutput,
  name: string,
  type: string,
  tenantId: string,
  s: WritebackRunSummary,
): void {
  const lines: string[] = []
  const total = s.sent + s.failed + s.retrying
  if (total === 0) {
    lines.push(`Nothing to send: no updates are due for ${name} of tenant "${tenantId}".`)
  } else {
    lines.push(
      `Sent ${s.sent} of ${plural(total, 'update')} to ${name} in ${plural(s.batches, 'batch', 'batches')}: ` +
        `${s.failed} failed, ${s.retrying} will be retried.`,
    )
  }
  if (s.waiting > 0) {
    const when = s.nextDueInMs === null ? '' : ` (the next in ${Math.ceil(s.nextDueInMs / 1000)} s)`
    lines.push(
      `${plural(s.waiting, 'update waits', 'updates wait')} for another attempt${when}; the worker or another run sends them.`,
    )
  }
  for (const [entityType, count] of Object.entries(s.disabled)) {
    lines.push(
      `${plural(count, `${entityType} update waits`, `${entityType} updates wait`)}: ${entityType} writeback is disabled (enable it with: gtm-agent writeback config ${type} --tenant ${tenantId} --entity ${entityType} --enable).`,
    )
  }
  out.line(lines.join('\n'))
  if (s.failures.length > 0) {
    out.table(
      ['FAILED', 'ID', 'ERROR'],
      s.failures.map((f) => [f.entityType, f.externalId, f.error]),
    )
  }
}

function printPreview(
  out: CliOutput,
  name: string,
  type: string,
  tenantId: string,
  report: WritebackPreviewReport,
): void {
  const rows = report.items.flatMap((item) =>
    item.error !== undefined
      ? [[item.entityType, item.externalId, item.objectType ?? '-', '-', '-', `(${item.error})`]]
      : !item.found
        ? [[item.entityType, item.externalId, item.objectType ?? '-', '-', '-', '(no such record)']]
        : item.changes.map((c) => [
            item.entityType,
            item.externalId,
            item.objectType ?? '-',
            c.field,
            show(c.from),
            show(c.to),
          ]),
  )
  if (rows.length > 0) out.table(['ENTITY', 'ID', 'OBJECT', 'FIELD', 'CURRENT', 'NEW'], rows)
  const changing = report.items.filter((i) => i.found && i.error === undefined).length
  const lines = [
    report.items.length === 0
      ? `Dry run: no updates are due for ${name} of tenant "${tenantId}".`
      : `Dry run: ${plural(changing, 'record')} of ${report.items.length} would be updated in ${name}; nothing was written.`,
  ]
  if (report.waiting > 0) {
    lines.push(
      `${plural(report.waiting, 'update waits', 'updates wait')} for another attempt and ${report.waiting === 1 ? 'is' : 'are'} not shown.`,
    )
  }
  for (const [entityType, count] of Object.entries(report.disabled)) {
    lines.push(
      `${plural(count, `${entityType} update is`, `${entityType} updates are`)} not shown: ${entityType} writeback is disabled (gtm-agent writeback config ${type} --tenant ${tenantId} --entity ${entityType} --enable).`,
    )
  }
  out.line(lines.join('\n'))
}

function describeConfig(
  name: string,
  tenantId: string,
  view: WritebackConfigView & { changed: boolean },
): string {
  const fields = view.fieldMap.map((m) => `${m.canonicalField} → ${m.targetField}`).join(', ')
  const state = view.enabled ? 'enabled' : 'disabled'
  return view.changed
    ? `${name} ${view.entityType} writeback of tenant "${tenantId}" is now ${state}: ${fields || 'no fields'}.`
    : `${name} ${view.entityType} writeback of tenant "${tenantId}" is unchanged, ${state}: ${fields || 'no fields'}.`
}

function show(value: unknown): string {
  if (value === null || value === undefined) return '(empty)'
  return typeof value === 'string' ? value : JSON.stringify(value)
}
