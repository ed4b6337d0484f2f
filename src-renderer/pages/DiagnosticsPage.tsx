import { useState, type ReactNode } from 'react'
import type { IpcOutput } from '../../shared/ipc.js'
import { redact, scrubString } from '../../shared/redact.js'
import {
  Badge,
  Callout,
  Card,
  EmptyState,
  PageHeader,
  Skeleton,
  type Tone,
} from '../components/ui.js'
import { formatBytes, formatDateTime, formatDuration, formatRelative } from '../lib/format.js'
import { call, messageOf } from '../lib/gtm.js'
import { useQuery } from '../lib/use-query.js'
import { useAppStore } from '../stores/use-app-store.js'
import { useToastStore } from '../stores/use-toast-store.js'

type Outcome<T> = { ok: true; data: T } | { ok: false; error: string }

export interface Report {
  checkedAt: string
  app: IpcOutput<'app:info'> | null
  agentStatus: Outcome<IpcOutput<'agent:status'>>
  agent: Outcome<IpcOutput<'agent:info'>>
  keychain: Outcome<IpcOutput<'keychain:status'>>
  diagnostics: Outcome<IpcOutput<'diagnostics:run'>> | null
}

const settle = <T,>(promise: Promise<T>): Promise<Outcome<T>> =>
  promise.then(
    (data) => ({ ok: true as const, data }),
    (err: unknown) => ({ ok: false as const, error: messageOf(err) }),
  )

/** Every check at once; each part answers (or fails) on its own, so one down part shows red alone. */
export async function runChecks(tenantId: string | null): Promise<Report> {
  const [app, agentStatus, agent, keychain, diagnostics] = await Promise.all([
    call('app:info').catch(() => null),
    settle(call('agent:status')),
    settle(call('agent:info')),
    settle(call('keychain:status')),
    tenantId ? settle(call('diagnostics:run', { tenantId })) : Promise.resolve(null),
  ])
  return { checkedAt: new Date().toISOString(), app, agentStatus, agent, keychain, diagnostics }
}

/** The report as text for a support ticket: every value passed through redaction. */
export function reportText(report: Report): string {
  return scrubString(JSON.stringify(redact(report), null, 2))
}

/** Screen 5: the local health check. */
export function DiagnosticsPage({ tenantId }: { tenantId: string | null }) {
  const [run, setRun] = useState(0)
  const query = useQuery(`diagnostics/${tenantId ?? ''}/${run}`, () => runChecks(tenantId))
  const [last, setLast] = useState<Report | null>(null)
  const show = useToastStore((s) => s.show)
  const restartAgent = useAppStore((s) => s.restartAgent)
  const report = query.data ?? last
  if (query.data && query.data !== last) setLast(query.data)

  const copy = async (): Promise<void> => {
    if (!report) return
    try {
      await call('app:copyText', { text: reportText(report) })
      show('ok', 'Report copied. Secrets are removed from it.')
    } catch (err) {
      show('bad', `Could not copy: ${messageOf(err)}`)
    }
  }

  const d = report?.diagnostics?.ok ? report.diagnostics.data : null
  return (
    <div className="page">
      <PageHeader
        title="Diagnostics"
        description="Is every part the app needs up? Run the checks, and copy the report (no secrets in it) for support."
        actions={
          <>
            <button type="button" className="button" disabled={!report} onClick={() => void copy()}>
              Copy report
            </button>
            <button
              type="button"
              className="button button-primary"
              disabled={query.loading}
              onClick={() => setRun((r) => r + 1)}
            >
              {query.loading ? 'Checking…' : 'Run all checks'}
            </button>
          </>
        }
      />
      {!report ? <Skeleton lines={8} label="Running the checks" /> : null}
      {report ? (
        <>
          <p className="small muted">Checked {formatDateTime(report.checkedAt)}.</p>
          <div className="grid grid-3">
            <AgentCard
              report={report}
              onRestart={() => void restartAgent().then(() => setRun((r) => r + 1))}
            />
            <DatabaseCard report={report} />
            <TemporalCard report={report} />
            <KeychainCard report={report} />
            <KeyCard report={report} />
          </div>
          {report.diagnostics && !report.diagnostics.ok ? (
            <Callout tone="bad" title="The agent's checks did not run" role="alert">
              <p>{report.diagnostics.error}</p>
            </Callout>
          ) : null}
          {d ? <ConnectionsCard diagnostics={d} /> : null}
          {d ? <ErrorsCard diagnostics={d} /> : null}
        </>
      ) : null}
    </div>
  )
}

function Check({
  id,
  title,
  tone,
  state,
  children,
  action,
}: {
  id: string
  title: string
  tone: Tone
  state: string
  children: ReactNode
  action?: ReactNode
}) {
  return (
    <Card
      labelledBy={`diag-${id}`}
      title={
        <div className="row-between" style={{ width: '100%' }}>
          <h2 id={`diag-${id}`}>{title}</h2>
          <span data-testid={`diag-${id}`} data-tone={tone}>
            <Badge tone={tone}>{state}</Badge>
          </span>
        </div>
      }
    >
      {children}
      {action}
    </Card>
  )
}

function AgentCard({ report, onRestart }: { report: Report; onRestart: () => void }) {
  const status = report.agentStatus.ok ? report.agentStatus.data : null
  const info = report.agent.ok ? report.agent.data : null
  const up = status?.state === 'ready'
  return (
    <Check
      id="agent"
      title="Agent process"
      tone={
        up ? 'ok' : status?.state === 'starting' || status?.state === 'restarting' ? 'warn' : 'bad'
      }
      state={status?.state ?? 'unknown'}
      action={
        status && !up ? (
          <div className="row">
            <button type="button" className="button" onClick={onRestart}>
              Restart agent
            </button>
          </div>
        ) : null
      }
    >
      <dl className="facts">
        <dt>Version</dt>
        <dd>{info?.version ?? report.app?.version ?? '—'}</dd>
        <dt>Uptime</dt>
        <dd>{info ? formatDuration(info.uptimeSeconds * 1000) : '—'}</dd>
        <dt>Restarts</dt>
        <dd>{status?.restarts ?? '—'}</dd>
        <dt>Memory</dt>
        <dd>{info ? formatBytes(info.memory.rssBytes) : '—'}</dd>
      </dl>
      {status?.lastError ? <p className="small reject-reason">{status.lastError}</p> : null}
      {!report.agent.ok ? <p className="small reject-reason">{report.agent.error}</p> : null}
    </Check>
  )
}

function DatabaseCard({ report }: { report: Report }) {
  const db = report.diagnostics?.ok ? report.diagnostics.data.database : null
  const current = db?.migrations ? db.migrations.applied === db.migrations.shipped : false
  const tone: Tone =
    !db || !db.reachable ? 'bad' : !current || db.tablesWithoutRls.length > 0 ? 'warn' : 'ok'
  return (
    <Check
      id="database"
      title="Database"
      tone={tone}
      state={!db ? 'unknown' : db.reachable ? 'reachable' : 'unreachable'}
    >
      {db ? (
        <dl className="facts">
          <dt>Latency</dt>
          <dd>{db.latencyMs !== null ? formatDuration(db.latencyMs) : '—'}</dd>
          <dt>Migrations</dt>
          <dd>
            {db.migrations
              ? `${db.migrations.applied} of ${db.migrations.shipped}${current ? ' (current)' : ''}`
              : '—'}
          </dd>
          <dt>Row-level security</dt>
          <dd>
            {!db.reachable
              ? '—'
              : db.tablesWithoutRls.length === 0
                ? 'forced on every tenant table'
                : `missing on ${db.tablesWithoutRls.join(', ')}`}
          </dd>
        </dl>
      ) : null}
      {db?.error ? (
        <p className="small reject-reason" data-testid="database-error">
          {db.error}
        </p>
      ) : null}
      {db && !db.reachable ? (
        <p className="small">
          Check that Postgres is running and that Settings → Database points at it.
        </p>
      ) : null}
    </Check>
  )
}

function TemporalCard({ report }: { report: Report }) {
  const t = report.diagnostics?.ok ? report.diagnostics.data.temporal : null
  const tone: Tone =
    !t || !t.reachable
      ? 'bad'
      : t.worker === 'stopped'
        ? 'bad'
        : t.worker === 'starting'
          ? 'warn'
          : 'ok'
  return (
    <Check
      id="temporal"
      title="Temporal"
      tone={tone}
      state={!t ? 'unknown' : t.reachable ? 'reachable' : 'unreachable'}
    >
      {t ? (
        <dl className="facts">
          <dt>Address</dt>
          <dd className="mono">{t.address}</dd>
          <dt>Namespace</dt>
          <dd>{t.namespace}</dd>
          <dt>Latency</dt>
          <dd>{t.latencyMs !== null ? formatDuration(t.latencyMs) : '—'}</dd>
          <dt>Worker</dt>
          <dd>{t.worker === 'off' ? 'off (an on-prem worker runs the syncs)' : t.worker}</dd>
          <dt>Schedules</dt>
          <dd>{t.schedules ?? '—'}</dd>
        </dl>
      ) : null}
      {t?.workerError ? <p className="small reject-reason">{t.workerError}</p> : null}
      {t?.error ? <p className="small reject-reason">{t.error}</p> : null}
    </Check>
  )
}

function KeychainCard({ report }: { report: Report }) {
  const k = report.keychain.ok ? report.keychain.data : null
  return (
    <Check
      id="keychain"
      title="OS keychain"
      tone={k?.available ? 'ok' : 'bad'}
      state={k?.available ? 'available' : 'unavailable'}
    >
      <dl className="facts">
        <dt>Backend</dt>
        <dd>{k?.backend ?? '—'}</dd>
        <dt>Persistent</dt>
        <dd>{k ? (k.persistent ? 'yes' : 'no') : '—'}</dd>
      </dl>
      {k?.problem ? <p className="small reject-reason">{k.problem}</p> : null}
      {!report.keychain.ok ? <p className="small reject-reason">{report.keychain.error}</p> : null}
    </Check>
  )
}

function KeyCard({ report }: { report: Report }) {
  const key = report.diagnostics?.ok ? report.diagnostics.data.encryptionKey : null
  const fallback = report.agent.ok ? report.agent.data.encryptionKeyId : null
  const present = key?.present ?? fallback !== null
  const source = report.keychain.ok ? report.keychain.data.encryptionKeySource : null
  return (
    <Check
      id="key"
      title="Encryption key"
      tone={present ? 'ok' : 'bad'}
      state={present ? 'present' : 'missing'}
    >
      <dl className="facts">
        <dt>Key id</dt>
        <dd className="mono">{key?.keyId ?? fallback ?? '—'}</dd>
        <dt>Kept in</dt>
        <dd>{source ?? '—'}</dd>
      </dl>
    </Check>
  )
}

type Diagnostics = IpcOutput<'diagnostics:run'>

function ConnectionsCard({ diagnostics }: { diagnostics: Diagnostics }) {
  return (
    <Card title="Connections" labelledBy="diag-connections">
      {diagnostics.connections.length === 0 ? (
        <EmptyState title="No connections in this tenant">
          Connect a source on the Connectors page.
        </EmptyState>
      ) : (
        <div className="table-wrap">
          <table data-testid="diag-connections-table">
            <thead>
              <tr>
                <th>Connector</th>
                <th>Health</th>
                <th className="num">Latency</th>
                <th>API quota</th>
                <th>Credential</th>
              </tr>
            </thead>
            <tbody>
              {diagnostics.connections.map((c) => {
                const tone: Tone =
                  c.health?.status === 'healthy'
                    ? 'ok'
                    : c.health?.status === 'degraded'
                      ? 'warn'
                      : 'bad'
                return (
                  <tr key={c.connectorType}>
                    <td>{c.connectorType}</td>
                    <td>
                      <Badge tone={tone}>{c.health?.status ?? 'unknown'}</Badge>
                      {c.health?.message || c.error ? (
                        <div className="xsmall muted">{c.error ?? c.health?.message}</div>
                      ) : null}
                    </td>
                    <td className="num">{c.health ? formatDuration(c.health.latencyMs) : '—'}</td>
                    <td>
                      {c.quota
                        ? `${c.quota.used.toLocaleString()} of ${c.quota.limit.toLocaleString()} (${Math.round((c.quota.used / Math.max(c.quota.limit, 1)) * 100)}%)`
                        : '—'}
                    </td>
                    <td className="small">
                      {c.credential}
                      {c.tokenExpiresAt ? (
                        <div className="xsmall muted">
                          Current token expires {formatRelative(c.tokenExpiresAt)}
                        </div>
                      ) : null}
                    </td>
                  </tr>
                )
              })}
            </tbody>
          </table>
        </div>
      )}
    </Card>
  )
}

const kindTone: Record<Diagnostics['recentErrors'][number]['kind'], Tone> = {
  configuration: 'bad',
  transient: 'warn',
  system: 'bad',
}

function ErrorsCard({ diagnostics }: { diagnostics: Diagnostics }) {
  return (
    <Card title="Recent errors (7 days)" labelledBy="diag-errors">
      {diagnostics.recentErrors.length === 0 ? (
        <EmptyState title="No errors in the last 7 days" />
      ) : (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th>Kind</th>
                <th>What</th>
                <th className="num">Times</th>
                <th>Last</th>
                <th>Next step</th>
              </tr>
            </thead>
            <tbody>
              {diagnostics.recentErrors.map((e) => (
                <tr key={`${e.kind}/${e.code}/${e.connectorType ?? ''}`}>
                  <td>
                    <Badge tone={kindTone[e.kind]}>{e.kind}</Badge>
                  </td>
                  <td>
                    {e.connectorType ? <strong>{e.connectorType}: </strong> : null}
                    {e.message}
                    <div className="xsmall muted mono">{e.code}</div>
                  </td>
                  <td className="num">{e.count}</td>
                  <td>{formatRelative(e.lastAt)}</td>
                  <td>{e.nextStep}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </Card>
  )
}
