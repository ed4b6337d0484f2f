import { useState } from 'react'
import type { IpcOutput } from '../../shared/ipc.js'
import { dayBound, formatDateTime, formatDuration, formatNumber } from '../lib/format.js'
import { call } from '../lib/gtm.js'
import { useQuery } from '../lib/use-query.js'
import { RunsChart } from './RunsChart.js'
import { Badge, Card, EmptyState, QueryState, type Tone } from './ui.js'

type Entry = IpcOutput<'timeline:list'>[number]
type EntryType = Entry['type']

const types: ReadonlyArray<{ id: EntryType; label: string }> = [
  { id: 'run', label: 'Syncs' },
  { id: 'config', label: 'Configuration' },
  { id: 'mapping', label: 'Mappings' },
  { id: 'signin', label: 'Sign-ins' },
  { id: 'schedule', label: 'Schedule' },
  { id: 'writeback', label: 'Writeback' },
]

const typeTone: Record<EntryType, Tone> = {
  run: 'info',
  config: 'idle',
  mapping: 'warn',
  signin: 'ok',
  schedule: 'idle',
  writeback: 'idle',
}

export function TimelinePanel({
  tenantId,
  connectorType,
  refreshKey,
}: {
  tenantId: string
  connectorType: string
  /** Changes when a sync from this app ends, so its run appears. */
  refreshKey: number
}) {
  const [selected, setSelected] = useState<EntryType[]>(types.map((t) => t.id))
  const [from, setFrom] = useState('')
  const [to, setTo] = useState('')
  const fromIso = dayBound(from, false)
  const toIso = dayBound(to, true)
  const key = `timeline/${tenantId}/${connectorType}/${selected.join(',')}/${from}/${to}/${refreshKey}`
  const query = useQuery(key, () =>
    call('timeline:list', {
      tenantId,
      connectorType,
      types: selected,
      ...(fromIso ? { from: fromIso } : {}),
      ...(toIso ? { to: toIso } : {}),
      limit: 200,
    }),
  )
  const runs = (query.data ?? []).filter((e) => e.run !== null)

  return (
    <div className="stack-lg">
      <Card title="Records and duration per run" labelledBy="chart-title">
        {runs.length > 0 ? (
          <RunsChart
            runs={runs.map((e) => ({
              id: e.id,
              at: e.at,
              records: e.run?.records ?? 0,
              durationMs: e.run?.durationMs ?? null,
              failed: e.run?.status === 'failed',
            }))}
          />
        ) : query.data ? (
          <p className="small muted">No sync in this period yet.</p>
        ) : null}
      </Card>
      <Card title="Timeline" labelledBy="timeline-title">
        <fieldset className="row" style={{ border: 'none', padding: 0, margin: 0 }}>
          <legend className="visually-hidden">Show</legend>
          {types.map((t) => (
            <label key={t.id} className="row small" style={{ gap: 4 }}>
              <input
                type="checkbox"
                checked={selected.includes(t.id)}
                onChange={(e) =>
                  setSelected((s) =>
                    e.target.checked ? [...s, t.id] : s.filter((x) => x !== t.id),
                  )
                }
              />
              {t.label}
            </label>
          ))}
        </fieldset>
        <div className="row">
          <div className="field">
            <label htmlFor="tl-from">From</label>
            <input
              id="tl-from"
              type="date"
              value={from}
              onChange={(e) => setFrom(e.target.value)}
            />
          </div>
          <div className="field">
            <label htmlFor="tl-to">To</label>
            <input id="tl-to" type="date" value={to} onChange={(e) => setTo(e.target.value)} />
          </div>
        </div>
        <QueryState {...query} what="the timeline" lines={5} />
        {query.data && query.data.length === 0 ? (
          <EmptyState title="Nothing here yet">
            Syncs, configuration and mapping changes and sign-ins appear here as they happen.
          </EmptyState>
        ) : null}
        {query.data && query.data.length > 0 ? (
          <div className="table-wrap">
            <table data-testid="timeline">
              <thead>
                <tr>
                  <th>When</th>
                  <th>What</th>
                  <th>Details</th>
                  <th>By</th>
                </tr>
              </thead>
              <tbody>
                {query.data.map((e) => (
                  <tr key={e.id} data-type={e.type}>
                    <td>{formatDateTime(e.at)}</td>
                    <td>
                      <div className="row">
                        <Badge tone={e.run?.status === 'failed' ? 'bad' : typeTone[e.type]}>
                          {types.find((t) => t.id === e.type)?.label ?? e.type}
                        </Badge>
                        <span>{e.title}</span>
                      </div>
                    </td>
                    <td className="small">
                      {e.run ? (
                        <>
                          {formatNumber(e.run.records)} records · {formatDuration(e.run.durationMs)}{' '}
                          · {e.run.mode}
                          {e.run.stream ? ` · ${e.run.stream}` : ''}
                          {e.run.error ? <div className="reject-reason">{e.run.error}</div> : null}
                        </>
                      ) : null}
                    </td>
                    <td className="small muted">{e.userId ?? 'schedule'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
      </Card>
    </div>
  )
}
