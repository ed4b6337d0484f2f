import { useState } from 'react'
import type { IpcOutput } from '../../shared/ipc.js'
import { Badge, Card, ConfirmDialog, PageHeader, QueryState } from '../components/ui.js'
import { connectorGuides, displayStatus, statusLabels, streamLabel } from '../lib/connectors.js'
import { formatNumber, formatRelative } from '../lib/format.js'
import { call, messageOf } from '../lib/gtm.js'
import { useQuery } from '../lib/use-query.js'
import { useRefresh } from '../lib/use-refresh.js'
import { useNavStore } from '../stores/use-nav-store.js'
import { liveKey, useSyncStore } from '../stores/use-sync-store.js'
import { useToastStore } from '../stores/use-toast-store.js'

type Connector = IpcOutput<'connectors:list'>[number]

/**
 * How a stream's last run ended, over all its partitions: 'never' when none was read, the first
 * failure when one failed.
 */
function streamStatus(
  streams: ReadonlyArray<{ stream: string; status: string }>,
  stream: string,
): string | null {
  const own = streams.filter((s) => s.stream === stream)
  if (own.length === 0) return null
  return own.find((s) => s.status !== 'succeeded' && s.status !== 'never')?.status ?? own[0]!.status
}
type Connection = IpcOutput<'connections:list'>[number]
type Schedule = IpcOutput<'schedules:get'>

export interface ConnectorsView {
  connectors: Connector[]
  connections: Connection[]
  schedules: Record<string, Schedule | undefined>
}

/** The connectors, their connections in this tenant and their schedules (when Temporal answers). */
export async function loadConnectorsView(tenantId: string): Promise<ConnectorsView> {
  const [connectors, connections] = await Promise.all([
    call('connectors:list'),
    call('connections:list', { tenantId }),
  ])
  const schedules: Record<string, Schedule | undefined> = {}
  await Promise.all(
    connections.map(async (c) => {
      // A schedule lives in Temporal: when it does not answer the card shows no next run.
      schedules[c.connectorType] = await call('schedules:get', {
        tenantId,
        connectorType: c.connectorType,
      }).catch(() => undefined)
    }),
  )
  return { connectors, connections, schedules }
}

/** Screen 1: every connector, its state in this tenant, and what to do next. */
export function ConnectorsPage({ tenantId }: { tenantId: string }) {
  const query = useQuery(`connectors/${tenantId}`, () => loadConnectorsView(tenantId))
  useRefresh(query.reload)
  const live = useSyncStore((s) => s.live)
  const [confirming, setConfirming] = useState<Connector | null>(null)
  const show = useToastStore((s) => s.show)

  const disconnect = async (connector: Connector): Promise<void> => {
    setConfirming(null)
    try {
      await call('connections:disconnect', { tenantId, connectorType: connector.id })
      show('ok', `${connector.name} disconnected. Its records stay; syncs stop.`)
      query.reload()
    } catch (err) {
      show('bad', `Could not disconnect ${connector.name}: ${messageOf(err)}`)
    }
  }

  return (
    <div className="page">
      <PageHeader
        title="Connectors"
        description="Connect your go-to-market sources. Each syncs on its schedule into your tenant's database."
        actions={
          <button type="button" className="button" onClick={query.reload}>
            Refresh
          </button>
        }
      />
      <QueryState {...query} what="connectors" lines={8} />
      {query.data ? (
        <div className="grid grid-3">
          {query.data.connectors.map((connector) => {
            const connection = query.data?.connections.find((c) => c.connectorType === connector.id)
            const sync = live[liveKey(tenantId, connector.id)]
            return (
              <ConnectorCard
                key={connector.id}
                connector={connector}
                connection={connection}
                schedule={query.data?.schedules[connector.id]}
                syncing={sync?.state === 'running' || sync?.state === 'cancelling'}
                liveRecords={sync?.state === 'running' ? sync.records : null}
                onDisconnect={() => setConfirming(connector)}
              />
            )
          })}
        </div>
      ) : null}
      <ConfirmDialog
        open={confirming !== null}
        title={`Disconnect ${confirming?.name ?? ''}?`}
        confirmLabel="Disconnect"
        danger
        onCancel={() => setConfirming(null)}
        onConfirm={() => confirming && void disconnect(confirming)}
      >
        <p>
          Syncs and writeback stop and the stored credentials are deleted. Records already synced
          stay in the database, and the settings (without secrets) are kept for Reconnect.
        </p>
      </ConfirmDialog>
    </div>
  )
}

function ConnectorCard({
  connector,
  connection,
  schedule,
  syncing,
  liveRecords,
  onDisconnect,
}: {
  connector: Connector
  connection: Connection | undefined
  schedule: Schedule | undefined
  syncing: boolean
  liveRecords: number | null
  onDisconnect: () => void
}) {
  const go = useNavStore((s) => s.go)
  const status = displayStatus(connection, { schedule, syncing })
  const { label, tone } = statusLabels[status]
  const connected = status !== 'disconnected'
  const guide = connectorGuides[connector.id]
  const headingId = `connector-${connector.id}`
  const lastOutcome = connection?.lastSyncError
    ? 'failed'
    : connection?.lastSyncAt
      ? 'succeeded'
      : null

  return (
    <Card className="connector-card" labelledBy={headingId}>
      <div className="row-between">
        <div className="connector-title">
          <span className={`logo logo-${guide ? connector.id : 'default'}`} aria-hidden="true">
            {guide?.initials ?? connector.name.slice(0, 2).toUpperCase()}
          </span>
          <div>
            <h2 id={headingId}>{connector.name}</h2>
            <span className="xsmall muted">{connector.dataTypes.join(', ')}</span>
          </div>
        </div>
        <span data-testid={`status-${connector.id}`}>
          <Badge tone={tone}>{label}</Badge>
        </span>
      </div>

      {connected && connection ? (
        <>
          <dl className="facts">
            <dt>Last sync</dt>
            <dd>
              {formatRelative(connection.lastSyncAt)}
              {lastOutcome ? (
                <>
                  {' · '}
                  <span className={lastOutcome === 'failed' ? 'reject-reason' : ''}>
                    {lastOutcome}
                  </span>
                </>
              ) : null}
            </dd>
            <dt>Next run</dt>
            <dd>
              {schedule?.paused
                ? 'paused'
                : schedule?.nextRunAt
                  ? formatRelative(schedule.nextRunAt)
                  : schedule === null
                    ? 'no schedule'
                    : '—'}
            </dd>
          </dl>
          {connection.lastSyncError ? (
            <p className="small reject-reason">{connection.lastSyncError}</p>
          ) : null}
          {liveRecords !== null ? (
            <p className="small" role="status">
              Syncing: {formatNumber(liveRecords)} records so far
            </p>
          ) : null}
          <div className="stack">
            <span className="label">Records per stream</span>
            <ul className="counts" aria-label={`${connector.name} records per stream`}>
              {connection.recordsByStream.map(({ stream, records }) => {
                const state = streamStatus(connection.streams, stream)
                return (
                  <li key={stream || 'earlier'} title={state ? `Last run: ${state}` : undefined}>
                    <strong>{formatNumber(records)}</strong>
                    <span className="muted">
                      {stream ? streamLabel(stream) : 'Earlier records'}
                      {state && state !== 'succeeded' ? ` (${state})` : ''}
                    </span>
                  </li>
                )
              })}
            </ul>
          </div>
        </>
      ) : (
        <p className="small muted">
          {connector.signIn
            ? `Sign in with ${connector.name} to start syncing.`
            : `Add your ${connector.name} API key to start syncing.`}
        </p>
      )}

      <div className="row">
        {connected ? (
          <>
            <button
              type="button"
              className="button button-primary"
              onClick={() =>
                go({ page: 'connector', connectorType: connector.id, tab: 'overview' })
              }
            >
              Open
            </button>
            <button
              type="button"
              className="button"
              onClick={() => go({ page: 'connect', connectorType: connector.id })}
            >
              Reconnect
            </button>
            <button type="button" className="button button-danger" onClick={onDisconnect}>
              Disconnect
            </button>
          </>
        ) : (
          <button
            type="button"
            className="button button-primary"
            onClick={() => go({ page: 'connect', connectorType: connector.id })}
          >
            Connect
          </button>
        )}
      </div>
    </Card>
  )
}
