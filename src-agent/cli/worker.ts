/** `gtm-agent worker`: runs the Temporal worker until Ctrl-C or SIGTERM. */
import type { Command } from 'commander'
import { ConfigError, describeError } from '../../shared/errors.js'
import { agentVersion } from '../layout.js'
import { takeOverShutdownSignals } from '../shutdown.js'
import { metricsRegistry } from '../telemetry/metrics.js'
import { startOpsServer } from '../telemetry/server.js'
import { registerStateGauges } from '../telemetry/state-gauges.js'
import { createWorkerOps, type WorkerOps } from '../temporal/ops.js'
import { runWorker } from '../temporal/worker.js'
import type { CliContext } from './context.js'
import { portNumber, withWebhookService } from './webhooks.js'

interface WorkerCommandOptions {
  webhooksPort?: number
  webhooksHost: string
  metricsPort?: number
  metricsHost: string
  temporalMetricsPort?: number
}

/** Adds `worker` to the program. */
export function registerWorkerCommand(program: Command, ctx: CliContext): void {
  program
    .command('worker')
    .description(
      'run the Temporal worker: scheduled syncs and writebacks (Ctrl-C stops it gracefully)',
    )
    .option('--webhooks-port <port>', 'also receive webhooks on this port', portNumber)
    .option('--webhooks-host <host>', 'address to receive webhooks on', '127.0.0.1')
    .option(
      '--metrics-port <port>',
      'serve /metrics (Prometheus), /healthz and /readyz on this port (off by default)',
      portNumber,
    )
    .option('--metrics-host <host>', 'address to serve metrics and health on', '127.0.0.1')
    .option(
      '--temporal-metrics-port <port>',
      "serve the Temporal SDK's worker metrics on this port (default: the metrics port + 1)",
      portNumber,
    )
    .action(async (opts: WorkerCommandOptions) => {
      const controller = new AbortController()
      const restoreSignals = takeOverShutdownSignals(controller)
      try {
        // A worker reports what it does at info level unless LOG_LEVEL says otherwise.
        const log = ctx.env.LOG_LEVEL ? ctx.log : ctx.log.child({}, { level: 'info' })
        const webhooks =
          opts.webhooksPort === undefined
            ? undefined
            : { port: opts.webhooksPort, host: opts.webhooksHost }
        const sdkMetricsAddress = sdkMetricsAddressOf(opts)
        const ops = createWorkerOps({ log })
        await withOpsServer(ctx, opts, ops, sdkMetricsAddress, () =>
          withWebhookService(ctx, webhooks, () =>
            runWorker({
              env: ctx.env,
              log,
              signal: controller.signal,
              ops,
              ...(sdkMetricsAddress === undefined ? {} : { sdkMetricsAddress }),
            }),
          ),
        )
      } finally {
        restoreSignals()
      }
    })
}

/**
 * Runs `fn` while serving /metrics, /healthz and /readyz (when --metrics-port is given): the
 * server starts first, so a port in use fails before the worker starts, and a load balancer sees
 * "up, not ready" while the worker connects.
 */
async function withOpsServer<T>(
  ctx: CliContext,
  opts: WorkerCommandOptions,
  ops: WorkerOps,
  sdk: string | undefined,
  fn: () => Promise<T>,
): Promise<T> {
  if (opts.metricsPort === undefined) return fn()
  registerStateGauges(metricsRegistry, () => ops.snapshot())
  let server
  try {
    server = await startOpsServer({
      port: opts.metricsPort,
      host: opts.metricsHost,
      registry: metricsRegistry,
      ready: () => ops.readiness(),
      version: agentVersion(),
      log: ctx.log,
    })
  } catch (cause) {
    throw new ConfigError(
      'config_invalid',
      `Cannot serve metrics on ${opts.metricsHost}:${opts.metricsPort}: ${describeError(cause)}`,
      { cause },
    )
  }
  try {
    ctx.out.line(
      `Serving metrics at ${server.url}/metrics, health at ${server.url}/healthz and ${server.url}/readyz` +
        (sdk === undefined ? '.' : `; Temporal worker metrics at http://${sdk}/metrics.`),
    )
    return await fn()
  } finally {
    await server.close()
  }
}

/** Where the SDK's metrics go: --temporal-metrics-port, else the metrics port + 1 (none for 0). */
function sdkMetricsAddressOf(opts: WorkerCommandOptions): string | undefined {
  const port =
    opts.temporalMetricsPort ??
    (opts.metricsPort !== undefined && opts.metricsPort > 0 && opts.metricsPort < 65_535
      ? opts.metricsPort + 1
      : undefined)
  if (port === undefined) return undefined
  const host = opts.metricsHost.includes(':') ? `[${opts.metricsHost}]` : opts.metricsHost
  return `${host}:${port}`
}
