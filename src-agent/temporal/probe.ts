/**
 * Whether Temporal answers, for Diagnostics and `gtm-agent status`: TEMPORAL_ADDRESS, or the
 * data directory's dev server when it runs (nothing is started), asked with a deadline; and how
 * many of the tenant's connection schedules it holds.
 */
import { Client, Connection } from '@temporalio/client'
import { DeadlineExceeded, withDeadline } from '../../shared/deadline.js'
import { describeError } from '../../shared/errors.js'
import { scrubString } from '../../shared/redact.js'
import { parseSyncScheduleId } from '../../shared/temporal.js'
import { dataDir, type Env } from '../config.js'
import type { TemporalDiagnostics } from '../services/diagnostics.js'
import { readTemporalSettings, type TemporalSettings } from './client.js'
import { findRunningDevServer } from './dev-server.js'
import { describeSchedule } from './scheduler.js'

/** Temporal could not be reached; the message says where and why (never a secret). */
export class TemporalUnreachable extends Error {
  constructor(
    readonly address: string,
    message: string,
  ) {
    super(message)
  }
}

/**
 * A connection to TEMPORAL_ADDRESS, or to the data directory's dev server when it runs (nothing
 * is started), made within `timeoutMs`; one that arrives after the deadline is closed, not
 * leaked. Throws TemporalUnreachable.
 */
export async function connectIfRunning(
  env: Env,
  timeoutMs: number,
): Promise<{ connection: Connection; address: string; settings: TemporalSettings }> {
  let address = env.TEMPORAL_ADDRESS?.trim() || 'local dev server'
  let settings: TemporalSettings
  try {
    settings = await readTemporalSettings(env)
    address = settings.address ?? (await findRunningDevServer(dataDir(env)))?.address ?? ''
  } catch (err) {
    throw new TemporalUnreachable(address, scrubString(describeError(err)))
  }
  if (!address) {
    throw new TemporalUnreachable(
      'local dev server',
      "TEMPORAL_ADDRESS is not set and the local Temporal dev server is not running: the agent's worker starts it.",
    )
  }
  const connecting = Connection.connect({
    address,
    connectTimeout: timeoutMs,
    ...(settings.tls === undefined ? {} : { tls: settings.tls }),
    ...(settings.apiKey ? { apiKey: settings.apiKey } : {}),
  })
  try {
    return { connection: await withDeadline(connecting, timeoutMs), address, settings }
  } catch (err) {
    void connecting.then((late) => late.close()).catch(() => undefined)
    throw new TemporalUnreachable(
      address,
      err instanceof DeadlineExceeded
        ? `Temporal at ${address} did not answer within ${timeoutMs / 1000} s.`
        : `Temporal at ${address} is not reachable: ${scrubString(describeError(err))}`,
    )
  }
}

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
  const seconds = `${input.timeoutMs / 1000} s`
  let reached: Awaited<ReturnType<typeof connectIfRunning>>
  try {
    reached = await connectIfRunning(env, input.timeoutMs)
  } catch (err) {
    return {
      reachable: false,
      address: err instanceof TemporalUnreachable ? err.address : 'local dev server',
      namespace,
      latencyMs: null,
      schedules: null,
      error: err instanceof Error ? err.message : String(err),
    }
  }
  const { connection, address, settings } = reached
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
    return {
      reachable: false,
      address,
      namespace,
      latencyMs: null,
      schedules: null,
      error: `Temporal at ${address} did not answer: ${scrubString(describeError(err))}`,
    }
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
