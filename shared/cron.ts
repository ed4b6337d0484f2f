/**
 * Sync schedule expressions, read the way Temporal's schedules read them (server
 * service/worker/scheduler/calendar.go, parseCronString), so the app can check one and show its
 * next runs before the agent sends it, and the agent accepts exactly what is checked here.
 * Plain TypeScript without Node APIs or dependencies: the renderer runs it in the browser.
 *
 * Accepted:
 * - 5 fields: minute hour day-of-month month day-of-week (6 adds a year, 7 also a leading second)
 * - in a field: `*`, `5`, `1-5`, lists `1,3,5`, steps `*\/15` `1-5/2` `10/20` (10 to the end, by 20);
 *   month names (JAN, or any prefix of at least 3 letters), day names (MON, at least 2 letters);
 *   day-of-week 0–7 where 0 and 7 are Sunday
 * - shorthands `@hourly @daily @midnight @weekly @monthly @yearly @annually`, intervals
 *   `@every 30m` (optionally `/phase`, aligned to the Unix epoch as Temporal aligns them)
 * - a `CRON_TZ=Europe/Paris` (or `TZ=`) prefix; otherwise times are UTC, as our schedules set no
 *   time zone (temporal/scheduler.ts)
 * - a trailing `# comment`
 *
 * Unlike Vixie cron, Temporal matches a time only when day-of-month AND day-of-week both match
 * (`0 0 13 * FRI` is Friday the 13th, not every 13th and every Friday): the runs shown here are
 * the ones Temporal will start.
 */

export type CronCheck = { ok: true } | { ok: false; error: string }

/** Whether Temporal would accept the expression and ever run it; the error names the field at fault. */
export function checkCron(expression: string): CronCheck {
  const parsed = parse(expression)
  if ('error' in parsed) return { ok: false, error: parsed.error }
  return { ok: true }
}

/**
 * The next `count` times (strictly after `after`, whole seconds) the expression runs; fewer when
 * it stops running (a year field, or Temporal's last calendar year 2100). Throws an Error with
 * checkCron's message for an invalid expression.
 */
export function nextCronRuns(expression: string, after: Date, count: number): Date[] {
  const parsed = parse(expression)
  if ('error' in parsed) throw new Error(parsed.error)
  if (!(count > 0) || Number.isNaN(after.getTime())) return []
  if (parsed.kind === 'interval') return intervalRuns(parsed, after.getTime(), count)
  return calendarRuns(parsed, after.getTime(), Math.floor(count))
}

// --- implementation ---

interface Calendar {
  kind: 'calendar'
  second: number[]
  minute: number[]
  hour: number[]
  dayOfMonth: boolean[]
  month: number[]
  dayOfWeek: boolean[]
  /** Allowed years in order (MIN_YEAR..MAX_YEAR when the expression names none). */
  year: number[]
  /** IANA time zone, or null for UTC. */
  zone: string | null
}

interface Interval {
  kind: 'interval'
  everySeconds: number
  phaseSeconds: number
}

/** Temporal's calendar years (calendar.go minCalendarYear / maxCalendarYear). */
const MIN_YEAR = 2000
const MAX_YEAR = 2100

const FIVE_FIELDS = 'minute hour day-of-month month day-of-week'

const SHORTHANDS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
}

const MONTHS = [
  'january',
  'february',
  'march',
  'april',
  'may',
  'june',
  'july',
  'august',
  'september',
  'october',
  'november',
  'december',
]
const DAYS = ['sunday', 'monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday']

interface FieldSpec {
  name: string
  min: number
  max: number
  names?: 'month' | 'day'
}

const SECOND: FieldSpec = { name: 'second', min: 0, max: 59 }
const MINUTE: FieldSpec = { name: 'minute', min: 0, max: 59 }
const HOUR: FieldSpec = { name: 'hour', min: 0, max: 23 }
const DAY_OF_MONTH: FieldSpec = { name: 'day-of-month', min: 1, max: 31 }
const MONTH: FieldSpec = { name: 'month', min: 1, max: 12, names: 'month' }
const DAY_OF_WEEK: FieldSpec = { name: 'day-of-week', min: 0, max: 7, names: 'day' }
const YEAR: FieldSpec = { name: 'year', min: MIN_YEAR, max: MAX_YEAR }

type Parsed = Calendar | Interval | { error: string }

function parse(expression: string): Parsed {
  let text = expression.trim()
  let zone: string | null = null
  const tz = /^(?:CRON_TZ|TZ)=(\S*)/.exec(text)
  if (tz) {
    zone = tz[1] ?? ''
    text = text.slice(tz[0].length).trim()
    if (text === '') return { error: `time zone: give the schedule after ${tz[0]}` }
    if (!isTimeZone(zone)) return { error: `time zone: "${zone}" is not a known time zone` }
  }
  text = text.split('#')[0]!.trim()
  if (text === '') {
    return { error: `the expression is empty: give 5 fields (${FIVE_FIELDS})` }
  }
  if (text.startsWith('@every')) return parseInterval(text)
  if (text.startsWith('@')) {
    const shorthand = SHORTHANDS[text]
    if (shorthand === undefined) {
      return {
        error: `${text} is not a shorthand: use @hourly, @daily, @weekly, @monthly, @yearly or @every <duration>`,
      }
    }
    text = shorthand
  }
  const tokens = text.split(/\s+/)
  const specs =
    tokens.length === 5
      ? [MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK]
      : tokens.length === 6
        ? [MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK, YEAR]
        : tokens.length === 7
          ? [SECOND, MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK, YEAR]
          : undefined
  if (!specs) {
    return {
      error: `the expression has ${tokens.length} field${tokens.length === 1 ? '' : 's'}: give 5 (${FIVE_FIELDS})`,
    }
  }
  const values = new Map<FieldSpec, number[]>()
  for (const [index, spec] of specs.entries()) {
    const field = parseField(tokens[index]!, spec)
    if (typeof field === 'string') return { error: field }
    values.set(spec, field)
  }
  const calendar: Calendar = {
    kind: 'calendar',
    second: values.get(SECOND) ?? [0],
    minute: values.get(MINUTE)!,
    hour: values.get(HOUR)!,
    dayOfMonth: toFlags(values.get(DAY_OF_MONTH)!, 32),
    month: values.get(MONTH)!,
    // 7 is Sunday, like 0.
    dayOfWeek: toFlags(
      values.get(DAY_OF_WEEK)!.map((d) => d % 7),
      7,
    ),
    year: values.get(YEAR) ?? range(MIN_YEAR, MAX_YEAR),
    zone,
  }
  return firstDay(calendar, MIN_YEAR) === undefined
    ? { error: `the schedule never runs: ${neverReason(calendar)}` }
    : calendar
}

/** One field's allowed values in ascending order, or the error naming the field. */
function parseField(token: string, spec: FieldSpec): number[] | string {
  const allowed = new Set<number>()
  for (const part of token.split(',')) {
    if (part === '') return `${spec.name}: "${token}" has an empty item`
    const [rangeText, stepText, extra] = part.split('/')
    if (extra !== undefined) return `${spec.name}: "${part}" has more than one "/"`
    let step = 1
    if (stepText !== undefined) {
      if (!/^\d+$/.test(stepText) || Number(stepText) < 1) {
        return `${spec.name}: the step in "${part}" must be a whole number of at least 1`
      }
      step = Number(stepText)
    }
    let start = spec.min
    let end = spec.max
    if (rangeText !== '*') {
      const bounds = rangeText!.split('-')
      if (bounds.length > 2) return `${spec.name}: "${part}" has more than one "-"`
      const first = parseValue(bounds[0]!, spec)
      if (typeof first === 'string') return first
      start = first
      if (bounds.length === 2) {
        const last = parseValue(bounds[1]!, spec)
        if (typeof last === 'string') return last
        if (last < start) return `${spec.name}: ${rangeText} ends before it starts`
        end = last
      } else if (stepText === undefined) {
        end = start
      }
    }
    for (let v = start; v <= end; v += step) allowed.add(v)
  }
  return [...allowed].sort((a, b) => a - b)
}

function parseValue(text: string, spec: FieldSpec): number | string {
  if (/^\d+$/.test(text)) {
    const value = Number(text)
    if (value < spec.min || value > spec.max) {
      return `${spec.name}: ${text} is out of range ${spec.min}–${spec.max}`
    }
    return value
  }
  const lower = text.toLowerCase()
  if (spec.names === 'month' && lower.length >= 3) {
    const index = MONTHS.findIndex((m) => m.startsWith(lower))
    if (index >= 0) return index + 1
  }
  if (spec.names === 'day' && lower.length >= 2) {
    const index = DAYS.findIndex((d) => d.startsWith(lower))
    if (index >= 0) return index
  }
  const what =
    spec.names === 'month'
      ? 'a month number or name (JAN)'
      : spec.names === 'day'
        ? 'a weekday number or name (MON)'
        : 'a number'
  return `${spec.name}: "${text}" is not ${what}`
}

/** `@every 30m`, `@every 1h/15m`: Go durations (plus `d` for days), at least a second. */
function parseInterval(text: string): Interval | { error: string } {
  const match = /^@every\s+(\S+)$/.exec(text)
  if (!match) return { error: 'interval: give a duration after @every, e.g. "@every 30m"' }
  const [everyText, phaseText, extra] = match[1]!.split('/')
  if (extra !== undefined) return { error: `interval: "${match[1]}" has more than one "/"` }
  const every = parseDuration(everyText!)
  if (every === undefined) {
    return { error: `interval: "${everyText}" is not a duration like 90s, 30m, 2h or 1d` }
  }
  if (every < 1) return { error: `interval: ${everyText} is shorter than a second` }
  let phase = 0
  if (phaseText !== undefined) {
    const parsedPhase = parseDuration(phaseText)
    if (parsedPhase === undefined) {
      return { error: `interval: the offset "${phaseText}" is not a duration like 90s, 30m or 2h` }
    }
    if (parsedPhase >= every) {
      return { error: `interval: the offset ${phaseText} must be shorter than ${everyText}` }
    }
    phase = parsedPhase
  }
  // Temporal counts in whole seconds.
  return { kind: 'interval', everySeconds: Math.floor(every), phaseSeconds: Math.floor(phase) }
}

const DURATION_UNITS: Record<string, number> = {
  ns: 1e-9,
  us: 1e-6,
  µs: 1e-6,
  μs: 1e-6,
  ms: 1e-3,
  s: 1,
  m: 60,
  h: 3600,
  d: 86_400,
}

/** Seconds in a Go duration ("1h30m", "1.5h", "90s"), or undefined. */
function parseDuration(text: string): number | undefined {
  const part = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)/y
  let seconds = 0
  let at = 0
  while (at < text.length) {
    part.lastIndex = at
    const match = part.exec(text)
    if (!match) return undefined
    seconds += Number(match[1]) * DURATION_UNITS[match[2]!]!
    at = part.lastIndex
  }
  return text === '' ? undefined : seconds
}

function intervalRuns(interval: Interval, after: number, count: number): Date[] {
  const { everySeconds: every, phaseSeconds: phase } = interval
  const afterSeconds = Math.floor(after / 1000)
  let next = (Math.floor((afterSeconds - phase) / every) + 1) * every + phase
  const runs: Date[] = []
  for (; runs.length < count; next += every) runs.push(new Date(next * 1000))
  return runs
}

const HOUR_MS = 3_600_000
const DAY_MS = 86_400_000

/**
 * The runs in UTC are the matching wall times themselves. In a time zone, each wall time is
 * turned into the instants it stands for (none in a spring-forward gap, two in a repeated autumn
 * hour: Temporal runs both), until `count` are found and no later wall time could come first.
 */
function calendarRuns(calendar: Calendar, after: number, count: number): Date[] {
  const offsetAt = calendar.zone === null ? null : zoneOffsets(calendar.zone)
  if (!offsetAt) {
    const found: number[] = []
    for (const wall of wallTimes(calendar, after + 1)) {
      found.push(wall)
      if (found.length >= count) break
    }
    return found.map((t) => new Date(t))
  }
  // A wall time stands for an instant at most a DST shift (under 3 hours) from its UTC reading.
  const margin = 3 * HOUR_MS
  const found: number[] = []
  let stopAfterWall: number | undefined
  for (const wall of wallTimes(calendar, after + offsetAt(after) - margin)) {
    if (stopAfterWall !== undefined && wall > stopAfterWall) break
    for (const instant of instantsOf(wall, offsetAt)) {
      if (instant > after) found.push(instant)
    }
    if (stopAfterWall === undefined && found.length >= count) {
      // No later wall time can stand for an instant before the ones found so far.
      const latest = Math.max(...found.slice(0, count))
      stopAfterWall = latest + offsetAt(latest) + margin
    }
  }
  return found
    .sort((a, b) => a - b)
    .slice(0, count)
    .map((t) => new Date(t))
}

/** Matching wall-clock times (as UTC readings) from `from` on, in order. */
function* wallTimes(calendar: Calendar, from: number): Generator<number> {
  const start = new Date(from)
  for (const y of calendar.year) {
    if (y < start.getUTCFullYear()) continue
    for (const mo of calendar.month) {
      if (Date.UTC(y, mo, 1) <= from) continue
      const days = daysInMonth(y, mo)
      for (let d = 1; d <= days; d++) {
        if (!dayMatches(calendar, y, mo, d) || Date.UTC(y, mo - 1, d + 1) <= from) continue
        for (const h of calendar.hour) {
          if (Date.UTC(y, mo - 1, d, h + 1) <= from) continue
          for (const mi of calendar.minute) {
            if (Date.UTC(y, mo - 1, d, h, mi + 1) <= from) continue
            for (const s of calendar.second) {
              const wall = Date.UTC(y, mo - 1, d, h, mi, s)
              if (wall >= from) yield wall
            }
          }
        }
      }
    }
  }
}

function dayMatches(calendar: Calendar, y: number, mo: number, d: number): boolean {
  return (
    calendar.dayOfMonth[d] === true &&
    calendar.dayOfWeek[new Date(Date.UTC(y, mo - 1, d)).getUTCDay()] === true
  )
}

/** The first matching day from `fromYear` on, or undefined when there is none. */
function firstDay(calendar: Calendar, fromYear: number): number | undefined {
  for (const y of calendar.year) {
    if (y < fromYear) continue
    for (const mo of calendar.month) {
      for (let d = 1; d <= daysInMonth(y, mo); d++) {
        if (dayMatches(calendar, y, mo, d)) return Date.UTC(y, mo - 1, d)
      }
    }
  }
  return undefined
}

function neverReason(calendar: Calendar): string {
  const days = calendar.dayOfMonth.flatMap((on, d) => (on ? [d] : []))
  const longest = Math.max(...calendar.month.map((mo) => (mo === 2 ? 29 : daysInMonth(2001, mo))))
  if (Math.min(...days) > longest) {
    const months = calendar.month.map((mo) => MONTHS[mo - 1]!.slice(0, 3).toUpperCase())
    return `day-of-month ${days.join(',')} does not occur in ${months.join(',')}`
  }
  return 'no date matches its day-of-month, month, day-of-week and year together'
}

function daysInMonth(y: number, mo: number): number {
  return new Date(Date.UTC(y, mo, 0)).getUTCDate()
}

function toFlags(values: number[], size: number): boolean[] {
  const flags = Array<boolean>(size).fill(false)
  for (const v of values) flags[v] = true
  return flags
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i)
}

function isTimeZone(zone: string): boolean {
  if (zone === '') return false
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone })
    return true
  } catch {
    return false
  }
}

/** The zone's UTC offset (ms) at an instant, from Intl, cached per quarter hour. */
function zoneOffsets(zone: string): (instant: number) => number {
  const format = new Intl.DateTimeFormat('en-US', {
    timeZone: zone,
    hourCycle: 'h23',
    year: 'numeric',
    month: 'numeric',
    day: 'numeric',
    hour: 'numeric',
    minute: 'numeric',
    second: 'numeric',
  })
  const cache = new Map<number, number>()
  return (instant) => {
    // Zones change offset on quarter hours.
    const key = Math.floor(instant / 900_000)
    const cached = cache.get(key)
    if (cached !== undefined) return cached
    const at = key * 900_000
    const parts = format.formatToParts(at)
    const get = (type: Intl.DateTimeFormatPartTypes): number =>
      Number(parts.find((p) => p.type === type)?.value ?? 0)
    const wall = Date.UTC(
      get('year'),
      get('month') - 1,
      get('day'),
      get('hour') % 24,
      get('minute'),
      get('second'),
    )
    const offset = wall - at
    cache.set(key, offset)
    return offset
  }
}

/** The instants a wall-clock time stands for in the zone: none, one, or two (a repeated hour). */
function instantsOf(wall: number, offsetAt: (instant: number) => number): number[] {
  const offsets = new Set([offsetAt(wall - DAY_MS), offsetAt(wall + DAY_MS)])
  const instants: number[] = []
  for (const offset of offsets) {
    const instant = wall - offset
    if (offsetAt(instant) === offset) instants.push(instant)
  }
  return instants.sort((a, b) => a - b)
}
