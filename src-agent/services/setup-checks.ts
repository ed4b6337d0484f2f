/**
 * The setup checks an admin watches one by one on the Connect screen, before anything is saved:
 * the settings parse, the source accepts the key, answers, lets us read, the webhook signing key
 * is there, the terms are accepted. Read-only: nothing is stored and nothing is audited. Every
 * message is scrubbed of the config's secrets, which are registered before the first check.
 */
import { and, eq } from 'drizzle-orm'
import type { Db } from '../../db/client.js'
import { connectorAgreements } from '../../db/schema/index.js'
import { withTenant } from '../../db/tenant.js'
import { AppError, VendorError, describeError } from '../../shared/errors.js'
import { scrubString } from '../../shared/redact.js'
import type { ConnectorHealthStatus } from '../../shared/schemas.js'
import type { AnyConnector, Credentials } from '../connectors/interface.js'
import type { ConnectorRegistry } from '../connectors/registry.js'
import type { Logger } from '../logging/logger.js'
import { registerSecrets } from '../pipeline/connection.js'
import { requireTenant } from '../pipeline/tenants.js'
import { checkHealth, parseConfig } from './connections.js'

/** One check as the screen shows it (shared/rpc.ts setupCheckSchema). */
export interface SetupCheck {
  id: SetupCheckId
  label: string
  status: 'passed' | 'failed' | 'skipped'
  message: string
  hint: string | null
  latencyMs: number | null
}

export type SetupCheckId =
  'settings' | 'auth' | 'reachable' | 'permissions' | 'webhook_key' | 'agreement'

export interface SetupReport {
  /** Every check passed or was skipped. */
  ok: boolean
  checks: SetupCheck[]
}

export interface SetupCheckDeps {
  db: Db
  registry: ConnectorRegistry
  log: Logger
}

export interface SetupCheckOptions {
  /** The caller's cancel: the checks stop and the call fails with it. */
  signal?: AbortSignal
  /** Told after each check, in order (the `connect:check` event). */
  onCheck?: (check: SetupCheck, index: number, total: number) => void
  /** How long one vendor check may take in all (default 20 s). */
  deadlineMs?: number
  /** After this long a vendor check starts no new retry (default 5 s): an admin is waiting. */
  retryWindowMs?: number
}

/**
 * Runs the checks that apply to the connector in order, each after the ones it needs, and
 * reports each as it ends. An unknown tenant or connector fails the call; anything the source
 * or the config does wrong is a failed check.
 */
export async function runSetupChecks(
  deps: SetupCheckDeps,
  input: { tenantId: string; connectorType: string; configJson: unknown },
  options: SetupCheckOptions = {},
): Promise<SetupReport> {
  const connector = deps.registry.get(input.connectorType)
  // First of all: no secret of the config can reach a message or a log line after this.
  registerSecrets(input.configJson, connector.secretConfigKeys)
  await withTenant(deps.db, input.tenantId, (tx) => requireTenant(tx, input.tenantId))
  const run: CheckRun = {
    deps,
    connector,
    tenantId: input.tenantId,
    configJson: input.configJson,
    options,
    log: deps.log.child({ tenantId: input.tenantId, connectorType: connector.id }),
  }
  const plan = STEPS.filter((step) => step.appliesTo?.(connector) ?? true)
  const checks: SetupCheck[] = []
  for (const [index, step] of plan.entries()) {
    const label = step.label(connector)
    const blocker = step.needs
      .map((id) => checks.find((c) => c.id === id))
      .find((c) => c !== undefined && c.status !== 'passed')
    const outcome: Outcome = blocker
      ? {
          status: 'skipped',
          message: `Not checked, because "${blocker.label}" did not pass.`,
          hint: null,
          latencyMs: null,
        }
      : await step.run(run)
    const check: SetupCheck = {
      id: step.id,
      label,
      status: outcome.status,
      message: scrubString(outcome.message),
      hint: outcome.hint === null ? null : scrubString(outcome.hint),
      latencyMs: outcome.latencyMs === null ? null : Math.round(outcome.latencyMs),
    }
    checks.push(check)
    options.onCheck?.(check, index, plan.length)
  }
  return { ok: checks.every((c) => c.status !== 'failed'), checks }
}

// --- the checks ---

type Outcome = Omit<SetupCheck, 'id' | 'label'>

interface CheckRun {
  deps: SetupCheckDeps
  connector: AnyConnector
  tenantId: string
  configJson: unknown
  options: SetupCheckOptions
  log: Logger
  /** Filled in by the checks that pass, for the ones after them. */
  config?: unknown
  credentials?: Credentials
  health?: ConnectorHealthStatus
}

interface Step {
  id: SetupCheckId
  label: (connector: AnyConnector) => string
  /** Checks that must have passed first; otherwise this one is skipped. */
  needs: SetupCheckId[]
  /** Left out of the plan for connectors it does not concern. */
  appliesTo?: (connector: AnyConnector) => boolean
  run: (run: CheckRun) => Promise<Outcome>
}

const DEFAULT_DEADLINE_MS = 20_000
const DEFAULT_RETRY_WINDOW_MS = 5_000

const NETWORK_HINT =
  "Check this computer's network connection and proxy settings, and that the base URL in the settings is right."

const STEPS: Step[] = [
  {
    id: 'settings',
    label: () => 'Settings complete',
    needs: [],
    run: (run) => {
      try {
        run.config = parseConfig(run.connector, run.configJson)
        registerSecrets(run.config, run.connector.secretConfigKeys)
        return Promise.resolve(passed('Every required setting is filled in.'))
      } catch (err) {
        if (!(err instanceof AppError)) throw err
        return Promise.resolve(
          failed(err.userMessage, 'Correct the settings named above, then run the checks again.'),
        )
      }
    },
  },
  {
    id: 'auth',
    label: (c) => (c.authMethod === 'api_key' ? 'Key accepted' : 'Signed in'),
    needs: ['settings'],
    run: (run) =>
      vendorStep(run, async (limits) => {
        const { connector } = run
        const started = performance.now()
        const auth = await connector.authenticate(run.config, { log: run.log, ...limits })
        registerSecrets(auth.credentials, connector.secretConfigKeys)
        run.credentials = auth.credentials
        const what = connector.authMethod === 'api_key' ? 'the API key' : 'the sign-in'
        return passed(`${connector.name} accepted ${what}.`, performance.now() - started)
      }),
  },
  {
    id: 'reachable',
    label: () => 'API reachable',
    needs: ['auth'],
    run: (run) =>
      vendorStep(run, async (limits) => {
        const { connector } = run
        // A refreshed session is used for what follows, and kept nowhere.
        const health = await checkHealth(connector, run.credentials!, run.log, {
          ...limits,
          onCredentialsChanged: (next) => {
            registerSecrets(next, connector.secretConfigKeys)
            run.credentials = next
            return Promise.resolve()
          },
        })
        run.health = health
        if (health.status === 'down') {
          return failed(health.message, hintForCode(run.connector, health.details['code']), {
            latencyMs: health.latencyMs,
          })
        }
        return passed(
          `${connector.name} answered in ${Math.round(health.latencyMs)} ms.`,
          health.latencyMs,
        )
      }),
  },
  {
    id: 'permissions',
    label: () => 'Permissions',
    needs: ['reachable'],
    run: (run) => {
      const health = run.health!
      if (health.status === 'healthy') return Promise.resolve(passed(health.message))
      // The connectors report what they may not do (a quota, a refused token) as degraded.
      const code = health.details['code']
      const hint =
        code === 'vendor_quota_exhausted' || 'apiUsage' in health.details
          ? `Wait until ${run.connector.name}'s daily API allowance resets, or raise it, then run the checks again.`
          : code === 'vendor_auth_failed'
            ? credentialsHint(run.connector)
            : `Give the user or app that connects to ${run.connector.name} the access named above, then run the checks again.`
      return Promise.resolve(failed(health.message, hint))
    },
  },
  {
    id: 'webhook_key',
    label: () => 'Webhook signing key present',
    needs: ['settings'],
    run: (run) => {
      const { connector } = run
      const key = connector.webhooks?.signingKeyConfigKey
      if (key === undefined) {
        return Promise.resolve({
          status: 'skipped',
          message: `${connector.name} sends no webhooks, so it needs no signing key.`,
          hint: null,
          latencyMs: null,
        })
      }
      const value = (run.config as Record<string, unknown> | undefined)?.[key]
      if (typeof value === 'string' && value.trim() !== '') {
        return Promise.resolve(passed('The webhook signing key is filled in.'))
      }
      return Promise.resolve(
        failed(
          `No webhook signing key is set, so the events ${connector.name} pushes would be refused (syncs still work).`,
          `Copy the signing key from ${connector.name}'s webhook settings into "${key}", then run the checks again.`,
        ),
      )
    },
  },
  {
    id: 'agreement',
    label: () => 'Data-processing terms accepted',
    needs: [],
    appliesTo: (c) => c.requiredAgreement !== undefined,
    run: async (run) => {
      const { connector, tenantId } = run
      const required = connector.requiredAgreement!
      const [row] = await withTenant(run.deps.db, tenantId, (tx) =>
        tx
          .select({ at: connectorAgreements.acceptedAt, by: connectorAgreements.acceptedBy })
          .from(connectorAgreements)
          .where(
            and(
              eq(connectorAgreements.tenantId, tenantId),
              eq(connectorAgreements.connector, connector.id),
              eq(connectorAgreements.agreement, required.id),
            ),
          ),
      )
      if (row) {
        return passed(
          `The ${required.name} were accepted by ${row.by} on ${row.at.toISOString().slice(0, 10)}.`,
        )
      }
      return failed(
        `No admin of this tenant has accepted the ${required.name}, so ${connector.name} reads nothing yet.`,
        `Read and accept the ${required.name} (Accept here, or run ${required.acceptCommand.replace('<tenant>', tenantId)}).`,
      )
    },
  },
]

function passed(message: string, latencyMs: number | null = null): Outcome {
  return { status: 'passed', message, hint: null, latencyMs }
}

function failed(message: string, hint: string, extra: { latencyMs?: number } = {}): Outcome {
  return { status: 'failed', message, hint, latencyMs: extra.latencyMs ?? null }
}

/**
 * Runs a check that calls the source under its own deadline, with retries cut short, and turns
 * a vendor's refusal or silence into a failed check. The caller's cancel fails the whole call.
 */
async function vendorStep(
  run: CheckRun,
  fn: (limits: { signal: AbortSignal; stop: AbortSignal }) => Promise<Outcome>,
): Promise<Outcome> {
  const deadlineMs = run.options.deadlineMs ?? DEFAULT_DEADLINE_MS
  const deadline = AbortSignal.timeout(deadlineMs)
  const caller = run.options.signal
  const signal = caller ? AbortSignal.any([caller, deadline]) : deadline
  const stop = AbortSignal.any([
    signal,
    AbortSignal.timeout(run.options.retryWindowMs ?? DEFAULT_RETRY_WINDOW_MS),
  ])
  const started = performance.now()
  try {
    return await fn({ signal, stop })
  } catch (err) {
    if (caller?.aborted) throw err
    const latencyMs = performance.now() - started
    if (deadline.aborted) {
      return failed(
        `${run.connector.name} did not answer within ${Math.round(deadlineMs / 1000)} seconds.`,
        NETWORK_HINT,
        { latencyMs },
      )
    }
    return { ...describeFailure(run.connector, err), latencyMs }
  }
}

/** A failed vendor call as a check: the refusal in a sentence, and what to do about it. */
function describeFailure(connector: AnyConnector, err: unknown): Outcome {
  if (err instanceof VendorError && err.code === 'vendor_auth_failed') {
    const what = connector.authMethod === 'api_key' ? 'the API key' : 'the sign-in'
    return failed(`${connector.name} refused ${what}.`, credentialsHint(connector))
  }
  if (err instanceof AppError) return failed(err.userMessage, hintForCode(connector, err.code))
  // Not an error of ours: a bug, said as plainly as we can.
  return failed(
    `The check stopped on an unexpected error: ${describeError(err)}`,
    "Run the checks again; if this happens again, the agent's log has the details.",
  )
}

function hintForCode(connector: AnyConnector, code: unknown): string {
  switch (code) {
    case 'vendor_auth_failed':
      return credentialsHint(connector)
    case 'vendor_unavailable':
      return NETWORK_HINT
    case 'vendor_rate_limited':
      return `${connector.name} is throttling requests: wait a minute, then run the checks again.`
    case 'vendor_quota_exhausted':
      return `Wait until ${connector.name}'s daily API allowance resets, then run the checks again.`
    default:
      return `Check the settings (base URL, account, region), then run the checks again.`
  }
}

function credentialsHint(connector: AnyConnector): string {
  return (
    connector.credentialsHelp ??
    `Get new credentials from ${connector.name}, enter them here, and run the checks again.`
  )
}
