/**
 * The CLI's webhook receiver: `webhooks serve`, and the `--webhooks-port` of `worker`
 * (withWebhookService). Its address goes to stdout, one log line per request to stderr.
 */
import { InvalidArgumentError, type Command } from 'commander'
import type { CliContext } from './context.js'
import { loadConnectorModules, openDatabase } from '../config.js'
import { connectorRegistry } from '../connectors/registry.js'
import { loadKeyring } from '../secrets/crypto.js'
import { takeOverShutdownSignals } from '../shutdown.js'
import { startWebhookProcessor } from '../webhooks/processor.js'
import { startWebhookServer } from '../webhooks/server.js'

export interface WebhookServiceOptions {
  port: number
  /** Default 127.0.0.1: only this machine (a reverse proxy) reaches it unless told otherwise. */
  host?: string
}

/** Adds `webhooks serve` to the program. */
export function registerWebhookCommands(program: Command, ctx: CliContext): void {
  program
    .command('webhooks')
    .description('receive events that sources push')
    .command('serve')
    .description(
      'accept POST /webhooks/<type>/<tenant> and process the events (Ctrl-C stops it gracefully)',
    )
    .requiredOption('--port <port>', 'port to listen on (0: any free port)', portNumber)
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .action(async (opts: { port: number; host: string }) => {
      const stop = new AbortController()
      const restoreSignals = takeOverShutdownSignals(stop)
      try {
        await withWebhookService(ctx, opts, () => stopped(stop.signal))
      } finally {
        restoreSignals()
      }
    })
}

/**
 * Runs `fn` while receiving webhooks (when `options` is given): the receiver and its processor
 * start first, so a port in use fails before `fn` starts, and stop after it, requests in
 * progress and the event in hand finished first.
 */
export async function withWebhookService<T>(
  ctx: CliContext,
  options: WebhookServiceOptions | undefined,
  fn: () => Promise<T>,
): Promise<T> {
  if (!options) return fn()
  const keyring = loadKeyring(ctx.env)
  await loadConnectorModules(ctx.env)
  // Like the worker, the receiver reports at info level unless LOG_LEVEL says otherwise.
  const log = ctx.env.LOG_LEVEL ? ctx.log : ctx.log.child({}, { level: 'info' })
  const database = await openDatabase({ env: ctx.env, log })
  try {
    const deps = { db: database.handle.db, registry: connectorRegistry, log }
    const processor = startWebhookProcessor(deps)
    try {
      const server = await startWebhookServer(
        { ...deps, keyring, onStored: (tenantId) => processor.wake(tenantId) },
        { port: options.port, ...(options.host ? { host: options.host } : {}) },
      )
      try {
        const types = connectorRegistry
          .describe()
          .map((c) => c.id)
          .filter((id) => connectorRegistry.get(id).webhooks)
        ctx.out.line(
          `Receiving webhooks at ${server.url}/webhooks/<type>/<tenant> ` +
            (types.length > 0
              ? `(${types.join(', ')}).`
              : '(no connector loaded here receives webhooks).'),
        )
        return await fn()
      } finally {
        await server.close()
      }
    } finally {
      await processor.close()
    }
  } finally {
    await database.close()
  }
}

/** A TCP port: 0 to 65535. */
export function portNumber(value: string): number {
  const n = Number(value)
  if (!/^\d+$/.test(value) || n > 65_535) {
    throw new InvalidArgumentError('expected a port number from 0 to 65535.')
  }
  return n
}

function stopped(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve()
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }))
}
