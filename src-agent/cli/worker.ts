/** `gtm-agent worker`: runs the Temporal worker until Ctrl-C or SIGTERM. */
import type { Command } from 'commander'
import { takeOverShutdownSignals } from '../shutdown.js'
import { runWorker } from '../temporal/worker.js'
import type { CliContext } from './context.js'
import { portNumber, withWebhookService } from './webhooks.js'

/** Adds `worker` to the program. */
export function registerWorkerCommand(program: Command, ctx: CliContext): void {
  program
    .command('worker')
    .description(
      'run the Temporal worker: scheduled syncs and writebacks (Ctrl-C stops it gracefully)',
    )
    .option('--webhooks-port <port>', 'also receive webhooks on this port', portNumber)
    .option('--webhooks-host <host>', 'address to receive webhooks on', '127.0.0.1')
    .action(async (opts: { webhooksPort?: number; webhooksHost: string }) => {
      const controller = new AbortController()
      const restoreSignals = takeOverShutdownSignals(controller)
      try {
        // A worker reports what it does at info level unless LOG_LEVEL says otherwise.
        const log = ctx.env.LOG_LEVEL ? ctx.log : ctx.log.child({}, { level: 'info' })
        const webhooks =
          opts.webhooksPort === undefined
            ? undefined
            : { port: opts.webhooksPort, host: opts.webhooksHost }
        await withWebhookService(ctx, webhooks, () =>
          runWorker({ env: ctx.env, log, signal: controller.signal }),
        )
      } finally {
        restoreSignals()
      }
    })
}
