import { describe, expect, it } from 'vitest'
import { checkCron, nextCronRuns } from '../../shared/cron.js'
import { DEFAULT_SYNC_CRON } from '../../shared/temporal.js'

const iso = (expression: string, after: string, count = 3): string[] =>
  nextCronRuns(expression, new Date(after), count).map((d) => d.toISOString())

describe('checkCron', () => {
  it.each([
    // What the agent, its docs and its tests schedule today.
    DEFAULT_SYNC_CRON,
    '0 * * * *',
    '30 2 * * *',
    '0 0 1 1 *',
    '@hourly',
    '@daily',
    '@every 2s',
    '@every 30m',
    'CRON_TZ=Europe/Paris 0 6 * * *',
    // Standard forms.
    '*/15 9-17 * * MON-FRI',
    '0 0 1,15 * *',
    '5 4 * JAN,jul sun',
    '0 0 * * 7',
    '1-5/2 * * * *',
    '0 12 * * 1 # Monday noon',
    '0 0 0 1 1 * 2030',
  ])('accepts %s', (expression) => {
    expect(checkCron(expression)).toEqual({ ok: true })
  })

  it.each([
    ['0 24 * * *', 'hour: 24 is out of range 0–23'],
    ['60 * * * *', 'minute: 60 is out of range 0–59'],
    ['0 0 0 * *', 'day-of-month: 0 is out of range 1–31'],
    ['0 0 * 13 *', 'month: 13 is out of range 1–12'],
    ['0 0 * * 8', 'day-of-week: 8 is out of range 0–7'],
    ['0 0 * * FUNDAY', 'day-of-week: "FUNDAY" is not a weekday number or name (MON)'],
    ['0 0 * SMARCH *', 'month: "SMARCH" is not a month number or name (JAN)'],
    ['*/0 * * * *', 'minute: the step in "*/0" must be a whole number of at least 1'],
    ['0 17-9 * * *', 'hour: 17-9 ends before it starts'],
    ['0 1,,2 * * *', 'hour: "1,,2" has an empty item'],
    ['0 0 L * *', 'day-of-month: "L" is not a number'],
    [
      'every day',
      'the expression has 2 fields: give 5 (minute hour day-of-month month day-of-week)',
    ],
    ['* * * *', 'the expression has 4 fields: give 5 (minute hour day-of-month month day-of-week)'],
    ['', 'the expression is empty: give 5 fields (minute hour day-of-month month day-of-week)'],
    [
      '@fortnightly',
      '@fortnightly is not a shorthand: use @hourly, @daily, @weekly, @monthly, @yearly or @every <duration>',
    ],
    ['@every soon', 'interval: "soon" is not a duration like 90s, 30m, 2h or 1d'],
    ['@every 500ms', 'interval: 500ms is shorter than a second'],
    ['CRON_TZ=Mars/Olympus 0 0 * * *', 'time zone: "Mars/Olympus" is not a known time zone'],
    ['0 0 30 2 *', 'the schedule never runs: day-of-month 30 does not occur in FEB'],
    [
      '0 0 31 4,6,9,11 *',
      'the schedule never runs: day-of-month 31 does not occur in APR,JUN,SEP,NOV',
    ],
  ])('refuses %j, naming the field: %s', (expression, error) => {
    expect(checkCron(expression)).toEqual({ ok: false, error })
  })

  it('makes nextCronRuns throw the same message', () => {
    expect(() => nextCronRuns('0 24 * * *', new Date(), 3)).toThrow(
      new Error('hour: 24 is out of range 0–23'),
    )
  })
})

describe('nextCronRuns', () => {
  it('counts in UTC whatever the local zone, strictly after the given time', () => {
    // Europe's and America's DST changes (29 and 8 March 2026) move nothing.
    expect(iso('30 2 * * *', '2026-03-28T02:30:00.000Z')).toEqual([
      '2026-03-29T02:30:00.000Z',
      '2026-03-30T02:30:00.000Z',
      '2026-03-31T02:30:00.000Z',
    ])
    expect(iso(DEFAULT_SYNC_CRON, '2026-03-08T01:59:59.999Z')).toEqual([
      '2026-03-08T02:00:00.000Z',
      '2026-03-08T02:15:00.000Z',
      '2026-03-08T02:30:00.000Z',
    ])
  })

  it('crosses month and year ends', () => {
    expect(iso('0 0 1 * *', '2026-11-15T00:00:00Z')).toEqual([
      '2026-12-01T00:00:00.000Z',
      '2027-01-01T00:00:00.000Z',
      '2027-02-01T00:00:00.000Z',
    ])
    expect(iso('59 23 * * *', '2026-12-31T23:58:00Z', 2)).toEqual([
      '2026-12-31T23:59:00.000Z',
      '2027-01-01T23:59:00.000Z',
    ])
  })

  it('runs on 29 February only in leap years', () => {
    expect(iso('0 12 29 2 *', '2026-01-01T00:00:00Z')).toEqual([
      '2028-02-29T12:00:00.000Z',
      '2032-02-29T12:00:00.000Z',
      '2036-02-29T12:00:00.000Z',
    ])
  })

  it('skips the months without a 31st', () => {
    expect(iso('0 0 31 * *', '2026-01-31T00:00:00Z', 4)).toEqual([
      '2026-03-31T00:00:00.000Z',
      '2026-05-31T00:00:00.000Z',
      '2026-07-31T00:00:00.000Z',
      '2026-08-31T00:00:00.000Z',
    ])
  })

  it('matches day-of-month AND day-of-week when both are set, as Temporal does (not Vixie cron’s OR)', () => {
    // Friday the 13th: February, March and November 2026, then August 2027.
    expect(iso('0 0 13 * FRI', '2026-01-01T00:00:00Z', 4)).toEqual([
      '2026-02-13T00:00:00.000Z',
      '2026-03-13T00:00:00.000Z',
      '2026-11-13T00:00:00.000Z',
      '2027-08-13T00:00:00.000Z',
    ])
    // With one of them `*`, the other alone decides.
    expect(iso('0 0 * * FRI', '2026-01-01T00:00:00Z', 2)).toEqual([
      '2026-01-02T00:00:00.000Z',
      '2026-01-09T00:00:00.000Z',
    ])
    expect(iso('0 0 13 * *', '2026-01-01T00:00:00Z', 2)).toEqual([
      '2026-01-13T00:00:00.000Z',
      '2026-02-13T00:00:00.000Z',
    ])
  })

  it('reads lists, ranges, steps, names, and 7 as Sunday', () => {
    // 2026-03-01 is a Sunday.
    expect(iso('0 9 * * 1-5/2', '2026-03-01T00:00:00Z')).toEqual([
      '2026-03-02T09:00:00.000Z',
      '2026-03-04T09:00:00.000Z',
      '2026-03-06T09:00:00.000Z',
    ])
    expect(iso('0 0 * * 7', '2026-03-01T00:00:00Z', 2)).toEqual(
      iso('0 0 * * SUN', '2026-03-01T00:00:00Z', 2),
    )
    expect(iso('0 0 * * 5-7', '2026-03-01T00:00:00Z', 3)).toEqual([
      '2026-03-06T00:00:00.000Z',
      '2026-03-07T00:00:00.000Z',
      '2026-03-08T00:00:00.000Z',
    ])
    expect(iso('10/20 6,18 1 FEB-DEC/5 *', '2026-01-01T00:00:00Z', 4)).toEqual([
      '2026-02-01T06:10:00.000Z',
      '2026-02-01T06:30:00.000Z',
      '2026-02-01T06:50:00.000Z',
      '2026-02-01T18:10:00.000Z',
    ])
    expect(iso('0 0 1 * *', '2026-02-01T00:00:00Z', 1)).toEqual(['2026-03-01T00:00:00.000Z'])
    expect(iso('0 0 1 FEB-DEC/5 *', '2026-02-01T00:00:00Z', 2)).toEqual([
      '2026-07-01T00:00:00.000Z',
      '2026-12-01T00:00:00.000Z',
    ])
  })

  it('aligns @every intervals to the Unix epoch, as Temporal does', () => {
    expect(iso('@every 15m', '2026-03-07T12:34:56Z')).toEqual([
      '2026-03-07T12:45:00.000Z',
      '2026-03-07T13:00:00.000Z',
      '2026-03-07T13:15:00.000Z',
    ])
    expect(iso('@every 1h/15m', '2026-03-07T12:34:56Z', 2)).toEqual([
      '2026-03-07T13:15:00.000Z',
      '2026-03-07T14:15:00.000Z',
    ])
    expect(iso('@daily', '2026-03-07T12:34:56Z', 1)).toEqual(['2026-03-08T00:00:00.000Z'])
  })

  it('follows a CRON_TZ zone through its DST changes: a skipped time does not run, a repeated one runs twice', () => {
    // Paris springs forward at 02:00 on 29 March 2026: there is no 02:30 that day.
    expect(iso('CRON_TZ=Europe/Paris 30 2 * * *', '2026-03-28T00:00:00Z')).toEqual([
      '2026-03-28T01:30:00.000Z',
      '2026-03-30T00:30:00.000Z',
      '2026-03-31T00:30:00.000Z',
    ])
    // New York falls back at 02:00 on 1 November 2026: 01:30 happens in EDT, then in EST.
    expect(iso('CRON_TZ=America/New_York 30 1 * * *', '2026-10-31T00:00:00Z')).toEqual([
      '2026-10-31T05:30:00.000Z',
      '2026-11-01T05:30:00.000Z',
      '2026-11-01T06:30:00.000Z',
    ])
  })

  it('stops where the schedule does', () => {
    expect(iso('0 0 1 1 * 2027', '2026-01-01T00:00:00Z')).toEqual(['2027-01-01T00:00:00.000Z'])
    expect(iso('0 0 1 1 * 2001', '2026-01-01T00:00:00Z')).toEqual([])
    expect(iso(DEFAULT_SYNC_CRON, '2026-01-01T00:00:00Z', 0)).toEqual([])
  })
})
