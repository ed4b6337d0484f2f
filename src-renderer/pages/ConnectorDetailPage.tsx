import { useEffect, useMemo, useRef, useState } from 'react'
import type { IpcOutput } from '../../shared/ipc.js'
import { checkCron, nextCronRuns } from '../../shared/cron.js'
import { LiveProgress } from '../components/LiveProgress.js'
import { RejectedPanel } from '../components/RejectedPanel.js'
import { TimelinePanel } from '../components/TimelinePanel.js'
import { WritebackPanel } from '../components/WritebackPanel.js'
import {
  Badge,
  Callout,
  Card,
  ConfirmDialog,
  EmptyState,
  PageHeader,
  QueryState,
  Tabs,
} from '../components/ui.js'
import { displayStatus, statusLabels, streamLabel, loadConnection } from '../lib/connectors.js'
import { formatDateTime, formatRelative } from '../lib/format.js'
import { call, messageOf } from '../lib/gtm.js'
import { useQuery } from '../lib/use-query.js'
import { useRefresh } from '../lib/use-refresh.js'
import { useNavStore, type DetailTab } from '../stores/use-nav-store.js'
import { liveKey, useSyncStore } from '../stores/use-sync-store.js'
import { useToastStore } from '../stores/use-toast-store.js'

type Connector = IpcOutput<'connectors:list'>[number]
type Connection = IpcOutput<'connections:list'>[number]
type Schedule = IpcOutput<'schedules:get'>

/** Screen 3: one connection: schedule, syncs and their progress, timeline, rejects, writeback. */
export function ConnectorDetailPage({
  tenantId,
  connectorType,
  tab,
}: {
  tenantId: string
  connectorType: string
  tab: DetailTab
}) {
  const query = useQuery(`detail/${tenantId}/${connectorType}`, () =>
    loadConnection(tenantId, connectorType),
  )
  const go = useNavStore((s) => s.go)
  const sync = useSyncStore((s) => s.live[liveKey(tenantId, connectorType)])
  const connector = query.data?.connector
  const connection = query.data?.connection
  const target = { tenantId, connectorType }
  const schedule = useQuery(connection ? `schedule/${tenantId}/${connectorType}` : null, () =>
    call('schedules:get', target),
  )
  const syncing = sync?.state === 'running' || sync?.state === 'cancelling'
  // A sync from this app that ends changes the connection's last sync and its streams' status:
  // read them again, so the page shows them without being left and opened again. A sync that
  // ended before the page opened is already in what the page loads.
  const finishedAt = sync?.finishedAt ?? null
  const seenFinishedAt = useRef(finishedAt)
  const reloadDetail = query.reload
  useEffect(() => {
    if (finishedAt === seenFinishedAt.current) return
    seenFinishedAt.current = finishedAt
    if (finishedAt !== null) reloadDetail()
  }, [finishedAt, reloadDetail])
  // Scheduled syncs do not tell the app: their outcome is read every so often.
  const reloadSchedule = schedule.reload
  useRefresh(() => {
    reloadDetail()
    reloadSchedule()
  })
  const status = displayStatus(connection, { schedule: schedule.data, syncing })

  const tabs: Array<{ id: DetailTab; label: string }> = [
    { id: 'overview', label: 'Overview' },
    { id: 'timeline', label: 'Timeline' },
    { id: 'rejected', label: 'Rejected records' },
    ...(connector?.writeback ? [{ id: 'writeback' as const, label: 'Writeback' }] : []),
  ]

  return (
    <div className="page">
      <PageHeader
        back={{ label: 'Connectors', onClick: () => go({ page: 'connectors' }) }}
        title={
          <span className="row">
            {connector?.name ?? connectorType}
            {connection ? (
              <span data-testid="detail-status">
                <Badge tone={statusLabels[status].tone}>{statusLabels[status].label}</Badge>
              </span>
            ) : null}
          </span>
        }
        description={
          connection
            ? `Last sync ${formatRelative(connection.lastSyncAt)}. Connected ${formatDateTime(connection.createdAt)}.`
            : undefined
        }
        actions={
          connector && connection ? (
            <>
              <button
                type="button"
                className="button"
                onClick={() => go({ page: 'mappings', connectorType })}
              >
                Field mappings
              </button>
              <button
                type="button"
                className="button"
                onClick={() => go({ page: 'connect', connectorType })}
              >
                Reconnect
              </button>
            </>
          ) : null
        }
      />
      <QueryState {...query} what="the connection" />
      {query.data && !connection ? (
        <EmptyState
          title={`${connector?.name ?? connectorType} is not connected in this tenant`}
          action={
            <button
              type="button"
              className="button button-primary"
              onClick={() => go({ page: 'connect', connectorType })}
            >
              Connect
            </button>
          }
        >
          Connect it to schedule syncs and see its history here.
        </EmptyState>
      ) : null}
      {connector && connection ? (
        <>
          {connection.needsReauth ? (
            <Callout
              tone="bad"
              title={`${connector.name} refused the stored credentials`}
              role="alert"
            >
              <p>{connection.lastSyncError}</p>
              <div className="row">
                <button
                  type="button"
                  className="button button-primary"
                  onClick={() => go({ page: 'connect', connectorType })}
                >
                  Reconnect {connector.name}
                </button>
              </div>
            </Callout>
          ) : null}
          <Tabs
            label={`${connector.name} sections`}
            tabs={tabs}
            selected={tab}
            onSelect={(t) => go({ page: 'connector', connectorType, tab: t })}
          />
          <div role="tabpanel" id={`panel-${tab}`} aria-labelledby={`tab-${tab}`}>
            {tab === 'overview' ? (
              <Overview
                tenantId={tenantId}
                connector={connector}
                connection={connection}
                schedule={schedule}
              />
            ) : tab === 'timeline' ? (
              <TimelinePanel
                tenantId={tenantId}
                connectorType={connectorType}
                refreshKey={sync?.finishedAt ?? 0}
              />
            ) : tab === 'rejected' ? (
              <RejectedPanel tenantId={tenantId} connector={connector} />
            ) : (
              <WritebackPanel tenantId={tenantId} connector={connector} />
            )}
          </div>
        </>
      ) : null}
    </div>
  )
}

function Overview({
  tenantId,
  connector,
  connection,
  schedule,
}: {
  tenantId: string
  connector: Connector
  connection: Connection
  schedule: ReturnType<typeof useQuery<Schedule>>
}) {
  return (
    <div className="stack-lg">
      <SyncCard tenantId={tenantId} connector={connector} />
      <div className="grid grid-2">
        <ScheduleCard tenantId={tenantId} connector={connector} schedule={schedule} />
        <StreamsCard connector={connector} connection={connection} />
      </div>
    </div>
  )
}

function SyncCard({ tenantId, connector }: { tenantId: string; connector: Connector }) {
  const sync = useSyncStore((s) => s.live[liveKey(tenantId, connector.id)])
  const start = useSyncStore((s) => s.start)
  const cancel = useSyncStore((s) => s.cancel)
  const show = useToastStore((s) => s.show)
  const [rereadStream, setRereadStream] = useState<string>('')
  const [confirming, setConfirming] = useState(false)
  const running = sync?.state === 'running' || sync?.state === 'cancelling'

  const run = async (options: { full?: boolean; stream?: string }): Promise<void> => {
    const summary = await start({ tenantId, connectorType: connector.id, ...options })
    if (summary?.status === 'succeeded') {
      show(
        'ok',
        `${connector.name} sync complete: ${summary.created} created, ${summary.updated} updated.`,
      )
    }
  }

  return (
    <Card
      title="Sync"
      labelledBy="sync-title"
      actions={
        running ? (
          <button
            type="button"
            className="button"
            disabled={sync?.state === 'cancelling'}
            onClick={() =>
              void cancel(tenantId, connector.id).catch((err: unknown) =>
                show('bad', messageOf(err)),
              )
            }
          >
            Cancel sync
          </button>
        ) : (
          <button type="button" className="button button-primary" onClick={() => void run({})}>
            Sync now
          </button>
        )
      }
    >
      {sync ? (
        <LiveProgress sync={sync} />
      ) : (
        <p className="small muted">
          Sync now reads what changed since the last sync. Scheduled syncs run by themselves.
        </p>
      )}
      <div className="row">
        <label htmlFor="reread" className="small">
          Read everything again:
        </label>
        <select
          id="reread"
          value={rereadStream}
          onChange={(e) => setRereadStream(e.target.value)}
          disabled={running}
        >
          <option value="">All streams</option>
          {connector.streams.map((s) => (
            <option key={s.id} value={s.id}>
              {s.name}
            </option>
          ))}
        </select>
        <button
          type="button"
          className="button"
          disabled={running}
          onClick={() => setConfirming(true)}
        >
          Full re-read…
        </button>
      </div>
      <ConfirmDialog
        open={confirming}
        title={`Read ${rereadStream ? streamLabel(rereadStream) : 'every stream'} again?`}
        confirmLabel="Start full re-read"
        onCancel={() => setConfirming(false)}
        onConfirm={() => {
          setConfirming(false)
          void run({ full: true, ...(rereadStream ? { stream: rereadStream } : {}) })
        }}
      >
        <p>
          Every record is read from {connector.name} again. Unchanged records are not rewritten, but
          a large source takes a while and uses API quota.
        </p>
      </ConfirmDialog>
    </Card>
  )
}

const presets = [
  { id: 'every15', label: 'Every 15 min', cron: '*/15 * * * *' },
  { id: 'hourly', label: 'Hourly', cron: '0 * * * *' },
  { id: 'daily', label: 'Daily', cron: '0 6 * * *' },
] as const

function ScheduleCard({
  tenantId,
  connector,
  schedule,
}: {
  tenantId: string
  connector: Connector
  schedule: ReturnType<typeof useQuery<Schedule>>
}) {
  const show = useToastStore((s) => s.show)
  const current = schedule.data
  const [draft, setDraft] = useState<string | null>(null)
  const [saving, setSaving] = useState(false)
  const cron = draft ?? current?.cron ?? presets[0].cron
  const preset = presets.find((p) => p.cron === cron)
  const [custom, setCustom] = useState(false)
  const check = checkCron(cron)
  const upcoming = useMemo(
    () => (check.ok ? nextCronRuns(cron, new Date(), 3) : []),
    [cron, check.ok],
  )
  const target = { tenantId, connectorType: connector.id }

  const act = async (what: 'set' | 'pause' | 'resume'): Promise<void> => {
    setSaving(true)
    try {
      if (what === 'set') await call('schedules:set', { ...target, cron })
      else if (what === 'pause') await call('schedules:pause', target)
      else await call('schedules:resume', target)
      setDraft(null)
      schedule.reload()
      show(
        'ok',
        what === 'set'
          ? 'Schedule saved.'
          : what === 'pause'
            ? 'Schedule paused.'
            : 'Schedule resumed.',
      )
    } catch (err) {
      show('bad', messageOf(err))
    } finally {
      setSaving(false)
    }
  }

  return (
    <Card title="Schedule" labelledBy="schedule-title">
      {schedule.error ? (
        <Callout tone="warn" title="The schedule cannot be read" role="alert">
          <p>{schedule.error.message}</p>
          <p className="muted">
            Syncs still run from Sync now. Diagnostics shows whether Temporal is reachable.
          </p>
        </Callout>
      ) : null}
      {current ? (
        <p className="small">
          {current.paused ? (
            <Badge tone="warn">Paused</Badge>
          ) : (
            <>
              Next run {formatRelative(current.nextRunAt)} ({formatDateTime(current.nextRunAt)})
            </>
          )}
          {current.lastRunAt ? ` · last ${formatRelative(current.lastRunAt)}` : ''}
        </p>
      ) : null}
      <div className="segmented" role="group" aria-label="How often">
        {presets.map((p) => (
          <button
            key={p.id}
            type="button"
            aria-pressed={!custom && preset?.id === p.id}
            onClick={() => {
              setCustom(false)
              setDraft(p.cron)
            }}
          >
            {p.label}
          </button>
        ))}
        <button type="button" aria-pressed={custom || !preset} onClick={() => setCustom(true)}>
          Custom
        </button>
      </div>
      {custom || !preset ? (
        <div className="field">
          <label htmlFor="cron">Cron expression (UTC)</label>
          <input
            id="cron"
            type="text"
            className="mono"
            value={cron}
            aria-invalid={!check.ok}
            aria-describedby="cron-help"
            onChange={(e) => setDraft(e.target.value)}
          />
          <span id="cron-help" className={check.ok ? 'help' : 'error-text'}>
            {check.ok ? 'minute hour day-of-month month day-of-week' : check.error}
          </span>
        </div>
      ) : null}
      {check.ok ? (
        <div className="small">
          <span className="muted">Next three runs: </span>
          <span data-testid="next-runs" data-runs={upcoming.map((d) => d.toISOString()).join(' ')}>
            {upcoming.map((d) => formatDateTime(d)).join(' · ')}
          </span>
        </div>
      ) : null}
      <div className="row">
        <button
          type="button"
          className="button button-primary"
          disabled={saving || !check.ok || cron === current?.cron}
          onClick={() => void act('set')}
        >
          Save schedule
        </button>
        {current ? (
          <button
            type="button"
            className="button"
            disabled={saving}
            onClick={() => void act(current.paused ? 'resume' : 'pause')}
          >
            {current.paused ? 'Resume' : 'Pause'}
          </button>
        ) : null}
      </div>
    </Card>
  )
}

function StreamsCard({ connector, connection }: { connector: Connector; connection: Connection }) {
  const go = useNavStore((s) => s.go)
  return (
    <Card title="Streams" labelledBy="streams-title">
      <div className="table-wrap">
        <table>
          <thead>
            <tr>
              <th>Stream</th>
              <th>Status</th>
              <th>Last read</th>
              <th>
                <span className="visually-hidden">Mappings</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {connection.streams.map((s) => (
              <tr key={`${s.stream}/${s.partition}`}>
                <td>
                  {streamLabel(s.stream)}
                  {s.partition ? <div className="xsmall muted">{s.partition}</div> : null}
                  {s.lastError ? <div className="reject-reason">{s.lastError}</div> : null}
                </td>
                <td>
                  <Badge
                    tone={
                      s.status === 'failed'
                        ? 'bad'
                        : s.status === 'never'
                          ? 'idle'
                          : s.status === 'running'
                            ? 'info'
                            : 'ok'
                    }
                  >
                    {s.status}
                  </Badge>
                </td>
                <td>{formatRelative(s.lastSyncAt)}</td>
                <td>
                  <button
                    type="button"
                    className="button button-ghost"
                    onClick={() =>
                      go({ page: 'mappings', connectorType: connector.id, stream: s.stream })
                    }
                    aria-label={`Edit mappings of ${streamLabel(s.stream)}`}
                  >
                    Mappings
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </Card>
  )
}
