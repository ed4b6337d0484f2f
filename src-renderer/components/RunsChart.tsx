import { formatDuration, formatNumber } from '../lib/format.js'

export interface ChartRun {
  id: string
  at: string
  records: number
  durationMs: number | null
  failed: boolean
}

/** Records (bars) and duration (line) of the latest runs, oldest on the left. */
export function RunsChart({ runs }: { runs: ChartRun[] }) {
  const width = 640
  const height = 160
  const pad = { left: 12, right: 12, top: 10, bottom: 20 }
  const shown = runs.slice(0, 30).reverse()
  const maxRecords = Math.max(1, ...shown.map((r) => r.records))
  const maxDuration = Math.max(1, ...shown.map((r) => r.durationMs ?? 0))
  const innerW = width - pad.left - pad.right
  const innerH = height - pad.top - pad.bottom
  const slot = innerW / Math.max(shown.length, 1)
  const barW = Math.max(Math.min(slot * 0.6, 28), 2)
  const x = (i: number): number => pad.left + slot * i + slot / 2
  const points = shown
    .map((r, i) =>
      r.durationMs === null
        ? null
        : `${x(i).toFixed(1)},${(pad.top + innerH - (r.durationMs / maxDuration) * innerH).toFixed(1)}`,
    )
    .filter(Boolean)
    .join(' ')
  const summary = `${shown.length} runs; most records in one run: ${formatNumber(maxRecords)}; longest: ${formatDuration(maxDuration)}`
  return (
    <figure className="stack" style={{ margin: 0 }}>
      {/* The scales' tops as text beside the plot, not in it: the plot stretches to the card's
          width, and a long duration ("1 min 23 s") was cut off at its edge. */}
      <div className="row-between xsmall muted" aria-hidden="true">
        <span data-testid="chart-max-records">{formatNumber(maxRecords)} records</span>
        <span data-testid="chart-max-duration">{formatDuration(maxDuration)}</span>
      </div>
      <svg
        className="chart"
        viewBox={`0 0 ${width} ${height}`}
        role="img"
        aria-label={`Records and duration per run: ${summary}`}
        data-testid="runs-chart"
        data-runs={shown.length}
        preserveAspectRatio="none"
      >
        {shown.map((r, i) => {
          const h = (r.records / maxRecords) * innerH
          return (
            <rect
              key={r.id}
              className={r.failed ? 'bar-failed' : 'bar-records'}
              x={x(i) - barW / 2}
              y={pad.top + innerH - h}
              width={barW}
              height={Math.max(h, 1)}
              rx={2}
            >
              <title>{`${new Date(r.at).toLocaleString()}: ${formatNumber(r.records)} records in ${formatDuration(r.durationMs)}${r.failed ? ' (failed)' : ''}`}</title>
            </rect>
          )
        })}
        {points ? <polyline className="line-duration" points={points} /> : null}
      </svg>
      <figcaption className="legend">
        <span>
          <span className="swatch swatch-records" />
          Records per run
        </span>
        <span>
          <span className="swatch swatch-duration" />
          Duration
        </span>
      </figcaption>
    </figure>
  )
}
