/**
 * Whether Temporal answers, for Diagnostics: TEMPORAL_ADDRESS, or the data directory's dev
 * server when it runs (nothing is started), asked with a deadline; and how many of the
 * tenant's connection schedules it holds.
 */
import { Client, Connection } from '@temporalio/client'
import { describeError } from '../../shared/errors.js'
import { scrubString } from '../../shared/redact.js'
import { parseSyncScheduleId } from '../../shared/temporal.js'
import { dataDir, type Env } from '../config.js'
import type { TemporalDiagnostics } from '../services/diagnostics.js'
import { readTemporalSettings } from './client.js'
import { findRunningDevServer } from './dev-server.js'
import { describeSchedule } from './scheduler.js'

/**
 * Connects within `timeoutMs`, times a round trip, and counts the tenant's schedules: of the
 * given connector types (read back one by one, so a schedule made a moment ago counts), else
 * every schedule whose id names the tenant. Never throws.
 */
export async function probeTemporal(
  env: Env,
  input: { tenantId: string; connectorTypes?: string[]; timeoutMs: number },
): Promise<TemporalDiagnostics> {
  const namespace = env.TEMPORAL_NAMESPACE?.trim() || 'default'
  let address = env.TEMPORAL_ADDRESS?.trim() || 'local dev server'
  const down = (error: string): TemporalDiagnostics => ({
    reachable: false,
    address,
    namespace,
    latencyMs: null,
    schedules: null,
    error,
  })
  let settings: Awaited<ReturnType<typeof readTemporalSettings>>
  try {
    settings = await readTemporalSettings(env)
    if (!settings.address) {
      const running = await findRunningDevServer(dataDir(env))
      if (!running) {
        return down(
          "TEMPORAL_ADDRESS is not set and the local Temporal dev server is not running: it starts with the agent's worker.",
        )
      }
      address = running.address
    } else {
      address = settings.address
    }
  } catch (err) {
    return down(scrubString(describeError(err)))
  }
  const seconds = `${input.timeoutMs / 1000} s`
  const connecting = Connection.connect({
    address,
    connectTimeout: input.timeoutMs,
    ...(settings.tls === undefined ? {} : { tls: settings.tls }),
    ...(settings.apiKey ? { apiKey: settings.apiKey } : {}),
  })
  let connection: Connection
  try {
    connection = await withDeadline(connecting, input.timeoutMs)
  } catch (err) {
    // A connection that arrives after the deadline is closed, not leaked.
    void connecting.then((late) => late.close()).catch(() => undefined)
    return down(
      err instanceof DeadlineExceeded
        ? `Temporal at ${address} did not answer within ${seconds}.`
        : `Temporal at ${address} is not reachable: ${scrubString(describeError(err))}`,
    )
  }
  try {
    const started = performance.now()
    await connection.withDeadline(Date.now() + input.timeoutMs, () =>
      connection.workflowService.getSystemInfo({}),
    )
    const latencyMs = performance.now() - started
    const client = new Client({ connection, namespace: settings.namespace })
    try {
      const schedules = await withDeadline(countSchedules(client, input), input.timeoutMs)
      return {
        reachable: true,
        address,
        namespace: settings.namespace,
        latencyMs,
        schedules,
        error: null,
      }
    } catch (err) {
      return {
        reachable: true,
        address,
        namespace: settings.namespace,
        latencyMs,
        schedules: null,
        error: `Temporal answered, but its schedules could not be read: ${
          err instanceof DeadlineExceeded
            ? `no answer within ${seconds}`
            : scrubString(describeError(err))
        }`,
      }
    }
  } catch (err) {
    return down(`Temporal at ${address} did not answer: ${scrubString(describeError(err))}`)
  } finally {
    await connection.close().catch(() => undefined)
  }
}

// --- implementation ---

async function countSchedules(
  client: Client,
  input: { tenantId: string; connectorTypes?: string[] },
): Promise<number> {
  if (input.connectorTypes) {
    const found = await Promise.all(
      input.connectorTypes.map((connectorType) =>
        describeSchedule(client, { tenantId: input.tenantId, connectorType }),
      ),
    )
    return found.filter((view) => view !== undefined).length
  }
  let count = 0
  for await (const summary of client.schedule.list()) {
    if (parseSyncScheduleId(summary.scheduleId)?.tenantId === input.tenantId) count += 1
  }
  return count
}

class DeadlineExceeded extends Error {}

async function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new DeadlineExceeded()), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}
