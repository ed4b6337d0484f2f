/**
 * A worker process for tests that kill and restart workers: `node --import tsx
 * test/helpers/worker-entry.ts`, configured by the same environment as `gtm-agent worker`.
 * SIGINT/SIGTERM stop it gracefully (exit 0).
 */
import { createLogger } from '../../src-agent/logging/logger.js'
import { takeOverShutdownSignals } from '../../src-agent/shutdown.js'
import { runWorker } from '../../src-agent/temporal/worker.js'

const log = createLogger({ name: 'test-worker' })
const controller = new AbortController()
const restoreSignals = takeOverShutdownSignals(controller)
try {
  await runWorker({ env: process.env, log, signal: controller.signal })
  process.exitCode = 0
} catch (err) {
  log.error({ err }, 'worker failed')
  process.exitCode = 1
} finally {
  restoreSignals()
}
