const numberFormat = new Intl.NumberFormat('en-US')
const dateTimeFormat = new Intl.DateTimeFormat('en-US', {
  month: 'short',
  day: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
})

export const formatNumber = (n: number): string => numberFormat.format(Math.round(n))

/** "Dec 3, 02:15 PM". */
export function formatDateTime(value: string | number | Date | null | undefined): string {
  if (value === null || value === undefined) return '—'
  const date = value instanceof Date ? value : new Date(value)
  return Number.isNaN(date.getTime()) ? '—' : dateTimeFormat.format(date)
}

/** "3 min ago", "in 12 min". */
export function formatRelative(value: string | null | undefined, now = Date.now()): string {
  if (!value) return 'never'
  const ms = new Date(value).getTime() - now
  const abs = Math.abs(ms)
  // Rounded once per unit, so 59.9 minutes reads "1 h", not "60 min".
  const minutes = Math.round(abs / 60_000)
  const hours = Math.round(abs / 3_600_000)
  const unit =
    abs < 60_000
      ? 'less than a minute'
      : minutes < 60
        ? `${minutes} min`
        : hours < 24
          ? `${hours} h`
          : `${Math.round(abs / 86_400_000)} d`
  return ms < 0 ? `${unit} ago` : `in ${unit}`
}

/** "1.2 s", "3 min 4 s". */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—'
  if (ms < 1000) return `${Math.round(ms)} ms`
  const s = ms / 1000
  if (s < 60) return `${s.toFixed(1)} s`
  const m = Math.floor(s / 60)
  return `${m} min ${Math.round(s - m * 60)} s`
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024 * 1024) return `${Math.round(bytes / 1024)} KB`
  return `${(bytes / 1024 / 1024).toFixed(0)} MB`
}

/** A value from a record, short enough for one table cell. */
export function formatValue(value: unknown): string {
  if (value === null || value === undefined) return '—'
  if (typeof value === 'string') return value
  return JSON.stringify(value)
}

/** A date input's value (YYYY-MM-DD) → the start or end of that local day, as ISO. */
export function dayBound(value: string, end: boolean): string | undefined {
  if (!value) return undefined
  const date = new Date(`${value}T${end ? '23:59:59.999' : '00:00:00'}`)
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString()
}
