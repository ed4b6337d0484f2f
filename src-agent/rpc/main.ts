/**
 * The agent as the desktop app runs it: a long-lived process (Electron's utilityProcess, or Node's
 * fork in tests) that owns the database, the Temporal worker and the connectors, and answers the
 * app's RPC over the link main hands it. Configured like the CLI, by environment variables main
 * sets at start (DATABASE_URL or the embedded database under GTM_DATA_DIR, TEMPORAL_ADDRESS or a
 * local dev server, CONNECTOR_ENCRYPTION_KEY from the OS keychain, GTM_USER for the audit log).
 */
import { toCallError } from '../../shared/contract.js'
import { describeError } from '../../shared/errors.js'
import { agentRpc, AGENT_ENV } from '../../shared/rpc.js'
import type { FromAgentMessage } from '../../shared/rpc.js'
import { loadConnectorModules, openDatabase, type Env, type OpenedDatabase } from '../config.js'
import { connectorRegistry } from '../connectors/registry.js'
import { agentVersion } from '../layout.js'
import { createLogger } from '../logging/logger.js'
import { loadKeyring } from '../secrets/crypto.js'
import { notifyConnectionChange } from '../temporal/notify.js'
import { runWorker } from '../temporal/worker.js'
import { createAgentHandlers } from './handlers.js'
import { connectToMain } from './port.js'
import { serveRpc } from './server.js'

/** Runs until main says quit (or goes away); resolves to the exit code. */
export async function runAgentService(env: Env = process.env): Promise<number> {
  const log = createLogger({ name: 'gtm-agent' })
  const link = await connectToMain()
  if (!link) {
    process.stderr.write(
      'error: this is the desktop app’s agent process; it is started by the app. On a server, run `gtm-agent worker`.\n',
    )
    return 2
  }
  const post = (message: FromAgentMessage): void => link.post(message)
  const stop = new AbortController()
  let quit: () => void = () => undefined
  const quitting = new Promise<void>((resolve) => (quit = resolve))
  const shutDown = (): void => {
    stop.abort()
    quit()
  }
  link.onClose(shutDown)
  process.once('SIGTERM', shutDown)
  process.once('SIGINT', shutDown)

  let database: OpenedDatabase | undefined
  const worker: { state: 'starting' | 'running' | 'stopped' | 'off'; error: string | null } = {
    state: 'off',
    error: null,
  }
  let workerDone: Promise<void> | undefined
  try {
    const keyring = loadKeyring(env)
    await loadConnectorModules(env)
    database = await openDatabase({ env, log })
    const userId = env[AGENT_ENV.user] || 'app:unknown'
    if (env[AGENT_ENV.worker] !== 'off') {
      worker.state = 'starting'
      workerDone = runWorker({
        env,
        log,
        signal: stop.signal,
        // Its first reconcile pass comes right before it starts polling.
        onReconciled: () => {
          if (worker.state === 'starting') worker.state = 'running'
        },
      })
        .then(() => {
          worker.state = 'stopped'
        })
        .catch((err: unknown) => {
          worker.state = 'stopped'
          worker.error = describeError(err)
          log.error({ err }, 'the Temporal worker stopped')
        })
    }
    const server = serveRpc({
      link,
      contract: agentRpc,
      handlers: createAgentHandlers({
        handle: database.handle,
        env,
        keyring,
        registry: connectorRegistry,
        log,
        userId,
        version: agentVersion(),
        startedAt: new Date(),
        embeddedDatabase: database.embedded,
        worker: () => ({ ...worker }),
        stop: stop.signal,
        // Schedules live in Temporal, whoever runs the worker: this agent, or an on-prem
        // `gtm-agent worker` on a shared Temporal. Without a reachable Temporal this is a no-op.
        onConnectionChange: async (change) => {
          await notifyConnectionChange({ env, log, userId }, change, { handle: database!.handle })
        },
      }),
      log,
      onShutdown: shutDown,
    })
    post({ type: 'ready', version: agentVersion(), pid: process.pid })
    log.info({ pid: process.pid }, 'agent ready')
    await quitting
    // Syncs stop after the page in hand (it is committed; the next sync resumes after it).
    await server.drained()
    await workerDone
    return 0
  } catch (err) {
    log.error({ err }, 'the agent could not start')
    post({ type: 'fatal', error: toCallError(err) })
    return 1
  } finally {
    await database?.close().catch((err: unknown) => log.error({ err }, 'closing the database'))
  }
}

/** The process: runs the service and exits with its code, whatever a library left open. */
export async function runAgentServiceProcess(): Promise<never> {
  const code = await runAgentService()
  process.exit(code)
}
