/**
 * `gtm-agent sync`: one sync now, in this process (progress on stderr, Ctrl-C stops it cleanly)
 * or, with --via-temporal, as the connection's Temporal workflow. Prints its counts.
 */
import type { Command } from 'commander'
import type { DbHandle } from '../../db/client.js'
import { AppError } from '../../shared/errors.js'
import { loadConnectorModules } from '../config.js'
import { connectorRegistry } from '../connectors/registry.js'
import { runSync, type SyncCounts, type SyncSummary } from '../pipeline/run-sync.js'
import { loadKeyring } from '../secrets/crypto.js'
import { whileInterruptible } from '../shutdown.js'
import { followSync } from '../temporal/follow-sync.js'
import type { SyncOutcomeView } from '../temporal/scheduler.js'
import type { SyncProgressView } from '../temporal/workflows.js'
import { pick, positiveInt, withDatabase, type CliContext } from './context.js'
import type { CliOutput } from './output.js'

/** Adds `sync <type>` to the program. */
export function registerSyncCommand(program: Command, ctx: CliContext): void {
  program
    .command('sync <type>')
    .description('run one sync now and print its counts')
    .requiredOption('--tenant <id>', 'tenant id')
    .option('--stream <id>', 'read only this stream (see `connectors`); every stream by default')
    .option('--partition <p>', 'read only this partition of the stream (a mailbox, a team)')
    .option(
      '--full',
      'read everything (of the streams read) instead of resuming from the last sync',
    )
    .option('--page-size <n>', 'records per page to ask the source for', positiveInt)
    .option(
      '--via-temporal',
      'run it as the connection’s Temporal workflow (or follow the one running); needs `gtm-agent worker`',
    )
    .option('--json', 'print JSON')
    .action(async (type: string, opts: SyncOptions & { json?: boolean; viaTemporal?: boolean }) => {
      if (opts.partition !== undefined && opts.stream === undefined) {
        throw new AppError(
          'config_invalid',
          '--partition needs --stream: name the stream it belongs to.',
        )
      }
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
    })
}

/**
 * `sync <type> --via-temporal`: starts the connection's sync workflow, or follows the one
 * already running, shows its progress on stderr, and prints the outcome. Throws (exit 1) when
 * the sync did not succeed.
 */
export async function syncViaTemporal(
  ctx: CliContext,
  opts: SyncOptions & { type: string; json?: boolean },
): Promise<SyncOutcomeView> {
  await loadConnectorModules(ctx.env)
  connectorRegistry.get(opts.type)
  const progress = progressLines()
  let outcome: SyncOutcomeView
  try {
    outcome = await followSync(
      ctx,
      {
        tenantId: opts.tenant,
        connectorType: opts.type,
        ...pick(opts, 'stream'),
        ...pick(opts, 'partition'),
        ...(opts.full ? { full: true } : {}),
        ...(opts.pageSize ? { pageSize: opts.pageSize } : {}),
      },
      {
        onFollowing: () =>
          process.stderr.write(
            `A sync of ${opts.type} for tenant "${opts.tenant}" is already running; following it.\n`,
          ),
        onProgress: progress.render,
      },
    )
  } finally {
    progress.end()
  }
  if (opts.json) ctx.out.json(outcome)
  else printOutcome(ctx.out, outcome)
  if (outcome.status !== 'succeeded') {
    throw new AppError(
      'sync_incomplete',
      'error' in outcome && outcome.error ? outcome.error : `The sync ${outcome.status}.`,
    )
  }
  return outcome
}

// --- implementation ---

interface SyncOptions {
  tenant: string
  stream?: string
  partition?: string
  full?: boolean
  pageSize?: number
}

async function syncWithProgress(
  ctx: CliContext,
  handle: DbHandle,
  keyring: ReturnType<typeof loadKeyring>,
  opts: SyncOptions & { type: string },
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
          ...pick(opts, 'stream'),
          ...pick(opts, 'partition'),
          ...(opts.full ? { full: true } : {}),
          ...(opts.pageSize ? { pageSize: opts.pageSize } : {}),
          ...(tty
            ? {
                onProgress: (p) => {
                  const line = `${p.stream ?? ''} ${p.phase}: ${p.pages} pages, ${p.created} created, ${p.updated} updated, ${p.deleted} deleted, ${p.errors} errors`
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
    ['status', summary.status],
    ['mode', summary.mode],
    ['pages', summary.pages],
    ['created', summary.created],
    ['updated', summary.updated],
    ['deleted', summary.deleted],
    ['errors', summary.errors],
  ]
  out.line(rows.map(([k, v]) => `${`${k}:`.padEnd(9)}${v}`).join('\n'))
  out.line(streamLines(summary.streams))
}

/** One line per stream: its outcome, counts and run. */
function streamLines(streams: readonly StreamLine[]): string {
  const width = Math.max(0, ...streams.map((s) => s.stream.length))
  return streams
    .map(
      (s) =>
        `  ${s.stream.padEnd(width)}  ${s.status.padEnd(9)} ${s.pages} pages, ${s.created} created, ${s.updated} updated, ${s.deleted} deleted, ${s.errors} errors  (run ${s.runId})`,
    )
    .join('\n')
}

type StreamLine = SyncCounts & { stream: string; status: string; runId: string }

/** Renders a workflow's progress on stderr: one updating line on a terminal, else a line a change. */
function progressLines(): { render: (p: SyncProgressView) => void; end: () => void } {
  const tty = process.stderr.isTTY
  let shown = 0
  let last = ''
  return {
    render: (p) => {
      const line = `${p.stream ?? ''} ${p.phase}: ${p.pages} pages, ${p.created} created, ${p.updated} updated, ${p.deleted} deleted, ${p.errors} errors`
      if (line === last) return
      last = line
      if (tty) {
        process.stderr.write(`\r${line.padEnd(shown)}`)
        shown = line.length
      } else {
        process.stderr.write(`${line}\n`)
      }
    },
    end: () => {
      if (tty && shown > 0) process.stderr.write('\n')
    },
  }
}

function printOutcome(out: CliOutput, outcome: SyncOutcomeView): void {
  const rows: Array<[string, string | number]> = [['workflow', outcome.workflowId]]
  if ('runId' in outcome) rows.push(['run', outcome.runId], ['mode', outcome.mode])
  rows.push(['status', outcome.status])
  if ('pages' in outcome) {
    rows.push(
      ['pages', outcome.pages],
      ['created', outcome.created],
      ['updated', outcome.updated],
      ['deleted', outcome.deleted],
      ['errors', outcome.errors],
    )
  }
  if ('error' in outcome && outcome.error) rows.push(['error', outcome.error])
  out.line(rows.map(([k, v]) => `${`${k}:`.padEnd(10)}${v}`).join('\n'))
  if ('streams' in outcome) out.line(streamLines(outcome.streams))
}
