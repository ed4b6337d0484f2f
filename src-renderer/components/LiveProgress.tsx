import { streamLabel } from '../lib/connectors.js'
import { formatDuration, formatNumber } from '../lib/format.js'
import { useNow } from '../lib/use-now.js'
import { streamEta, streamRate, type LiveSync } from '../stores/use-sync-store.js'
import { Badge, Callout, ProgressBar } from './ui.js'

const stateTone = {
  running: 'info',
  cancelling: 'warn',
  succeeded: 'ok',
  failed: 'bad',
  paused: 'warn',
  cancelled: 'warn',
} as const

const stateLabel = {
  running: 'Running',
  cancelling: 'Stopping after this page…',
  succeeded: 'Complete',
  failed: 'Failed',
  paused: 'Stopped early',
  cancelled: 'Cancelled',
} as const

/** A sync in progress (or just ended): per stream its phase, records, rate, bar and ETA. */
export function LiveProgress({ sync }: { sync: LiveSync }) {
  const running = sync.state === 'running' || sync.state === 'cancelling'
  const now = useNow(running)
  const end = sync.finishedAt ?? now
  const elapsed = end - sync.startedAt
  const rate = sync.records / Math.max(elapsed / 1000, 0.001)
  return (
    <section className="stack" aria-labelledby="live-title" data-testid="live-progress">
      <div className="row-between">
        <h3 id="live-title">{running ? 'Sync in progress' : 'Last sync from this app'}</h3>
        <Badge tone={stateTone[sync.state]}>{stateLabel[sync.state]}</Badge>
      </div>
      <p className="small" role="status" aria-live="polite">
        <strong data-testid="live-records">{formatNumber(sync.records)}</strong> records ·{' '}
        {formatNumber(rate)} records/s · {formatDuration(elapsed)}
        {sync.errors > 0 ? ` · ${formatNumber(sync.errors)} rejected` : ''}
      </p>
      {sync.streams.length === 0 && running ? (
        <>
          <ProgressBar value={null} label="Starting the sync" />
          <span className="xsmall muted">
            {sync.phase === 'authenticating' ? 'Signing in to the source…' : 'Starting…'}
          </span>
        </>
      ) : null}
      <div className="table-wrap">
        {sync.streams.length > 0 ? (
          <table>
            <thead>
              <tr>
                <th>Stream</th>
                <th>Phase</th>
                <th className="num">Records</th>
                <th className="num">Records/s</th>
                <th style={{ width: '30%' }}>Progress</th>
                <th className="num">ETA</th>
              </tr>
            </thead>
            <tbody>
              {sync.streams.map((s) => {
                const streamNow = s.done ? s.updatedAt : now
                const eta = streamEta(s, streamNow)
                return (
                  <tr key={s.stream} data-testid={`live-stream-${s.stream}`}>
                    <td>{streamLabel(s.stream)}</td>
                    <td>{s.done ? (s.phase === 'failed' ? 'failed' : 'done') : s.phase}</td>
                    <td className="num">{formatNumber(s.records)}</td>
                    <td className="num">{formatNumber(streamRate(s, streamNow))}</td>
                    <td>
                      <ProgressBar
                        value={s.done ? 1 : s.expected ? Math.min(s.records / s.expected, 1) : null}
                        label={`${streamLabel(s.stream)} progress`}
                      />
                    </td>
                    <td className="num">
                      {eta === null ? (s.done ? '—' : 'unknown') : formatDuration(eta * 1000)}
                    </td>
                  </tr>
                )
              })}
            </tbody>
          </table>
        ) : null}
      </div>
      {sync.error ? (
        <Callout tone="bad" title="The sync stopped" role="alert">
          <p>{sync.error}</p>
          <p className="muted">
            Pages already committed are kept; the next sync resumes from them.
          </p>
        </Callout>
      ) : null}
    </section>
  )
}
