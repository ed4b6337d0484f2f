import { describe, expect, it } from 'vitest'
import { AppError } from '../../shared/errors.js'
import {
  SYNC_OBJECTS,
  advance,
  comparePositions,
  initialCursor,
  parseCursor,
  passEnd,
  positionOf,
  serializeCursor,
  splitLegacyCursor,
} from '../../src-agent/connectors/salesforce/cursor.js'

const at = (stamp: string, id: string | null) => ({ stamp, id })

describe('Salesforce sync cursor', () => {
  it('starts an object from scratch on a null cursor', () => {
    expect(parseCursor(null, 'Lead')).toEqual({ v: 2, object: 'Lead', position: null })
    expect(initialCursor('Account')).toEqual({ v: 2, object: 'Account', position: null })
  })

  it('round-trips through its JSON text', () => {
    const cursor = {
      v: 2 as const,
      object: 'Lead' as const,
      position: at('2025-01-01T00:00:11.000Z', '00QFK0000000011AAA'),
      bulk: {
        jobId: '750FK0000000001AAA',
        locator: 'MTAwMDA',
        read: 10_000,
        expected: 25_000,
        since: '2026-01-02T00:00:00.000Z',
      },
      quota: { used: 801, max: 1000 },
    }
    expect(parseCursor(serializeCursor(cursor), 'Lead')).toEqual(cursor)
  })

  it('names what is wrong with a damaged cursor', () => {
    expect(() => parseCursor('{not json', 'Contact')).toThrow(/cannot be read \(it is not JSON\)/)
    const badStamp = JSON.stringify({ v: 2, object: 'Contact', position: at('yesterday', null) })
    expect(() => parseCursor(badStamp, 'Contact')).toThrow(AppError)
    expect(() => parseCursor(badStamp, 'Contact')).toThrow(/"position\.stamp"/)
    const other = serializeCursor(initialCursor('Account'))
    expect(() => parseCursor(other, 'Contact')).toThrow(/belongs to Account, not Contact/)
    // A version 1 cursor is never a stream's: the connection's upgrade splits it first.
    const legacy = JSON.stringify({ v: 1, next: 0, positions: {} })
    expect(() => parseCursor(legacy, 'Contact')).toThrow(/Run a full sync/)
  })

  it('moves its position, keeps it when a page read nothing, and drops a finished Bulk read', () => {
    const first = advance(initialCursor('Account'), at('2025-01-01T00:00:05.000Z', 'a5'))
    expect(first).toEqual({
      v: 2,
      object: 'Account',
      position: at('2025-01-01T00:00:05.000Z', 'a5'),
    })
    const reading = {
      ...first,
      bulk: { jobId: 'j', locator: null, read: 0, expected: 0, since: '2026-01-01T00:00:00.000Z' },
    }
    const next = advance(reading, null)
    expect(next.position).toEqual(at('2025-01-01T00:00:05.000Z', 'a5'))
    expect(next).not.toHaveProperty('bulk')
  })

  it('splits a version 1 cursor into one per object, keeping every position', () => {
    const legacy = JSON.stringify({
      v: 1,
      next: 3,
      positions: {
        Account: at('2025-01-01T00:00:05.000Z', '001A'),
        Lead: at('2025-02-01T00:00:00.000Z', null),
      },
      bulk: {
        object: 'Opportunity',
        jobId: 'j',
        locator: 'L',
        read: 5,
        expected: 9,
        since: '2026-01-01T00:00:00.000Z',
      },
    })
    const split = splitLegacyCursor(legacy)
    expect(Object.keys(split).sort()).toEqual(['Account', 'Lead'])
    expect(parseCursor(split.Account!, 'Account')).toEqual({
      v: 2,
      object: 'Account',
      position: at('2025-01-01T00:00:05.000Z', '001A'),
    })
    expect(parseCursor(split.Lead!, 'Lead').position).toEqual(at('2025-02-01T00:00:00.000Z', null))
    expect(splitLegacyCursor('{damaged')).toEqual({})
    expect(splitLegacyCursor(JSON.stringify({ v: 1, next: 0, positions: {} }))).toEqual({})
    expect(SYNC_OBJECTS).toHaveLength(6)
  })

  it('reads a record position from REST and Bulk datetimes alike', () => {
    expect(positionOf({ Id: '003A', SystemModstamp: '2025-03-01T17:01:30.000+0000' })).toEqual(
      at('2025-03-01T17:01:30.000Z', '003A'),
    )
    expect(positionOf({ Id: '003A', SystemModstamp: '2025-03-01T17:01:30.000Z' })).toEqual(
      at('2025-03-01T17:01:30.000Z', '003A'),
    )
    expect(positionOf({ Id: '003A' })).toBeNull()
    expect(positionOf({ Id: '003A', SystemModstamp: 'soon' })).toBeNull()
  })

  it('orders positions by SystemModstamp, then Id; no id comes first', () => {
    const t = '2025-01-01T00:00:05.000Z'
    expect(comparePositions(at(t, 'b'), at(t, 'a'))).toBeGreaterThan(0)
    expect(comparePositions(at(t, 'a'), at('2025-01-01T00:00:06.000Z', 'a'))).toBeLessThan(0)
    expect(comparePositions(at(t, null), at(t, 'a'))).toBeLessThan(0)
    expect(comparePositions(at(t, 'a'), at(t, 'a'))).toBe(0)
  })
})

describe('passEnd: where the next pass over an object starts', () => {
  const time = (iso: string) => Date.parse(iso)
  const tenMinutes = 600_000
  const last = { stamp: '2026-01-01T10:00:00.000Z', id: '003A' }

  it('keeps the exact keyset position once the last change read has settled', () => {
    expect(passEnd(null, last, time('2026-01-01T10:10:01Z'), tenMinutes)).toEqual(last)
  })

  it('goes back the look-back from the read when the last change is recent', () => {
    expect(passEnd(null, last, time('2026-01-01T10:05:00Z'), tenMinutes)).toEqual({
      stamp: '2026-01-01T09:55:00.000Z',
      id: null,
    })
  })

  it('stays on a look-back position when nothing new was read, and never drifts', () => {
    const start = { stamp: '2026-01-01T09:55:00.000Z', id: null }
    expect(passEnd(start, null, undefined, tenMinutes)).toEqual(start)
    expect(passEnd(start, null, time('2026-01-02T00:00:00Z'), tenMinutes)).toEqual(start)
  })

  it('judges an empty last page by where it started', () => {
    expect(passEnd(last, null, time('2026-01-02T00:00:00Z'), tenMinutes)).toEqual(last)
    expect(passEnd(last, null, time('2026-01-01T10:00:30Z'), tenMinutes)).toEqual({
      stamp: '2026-01-01T09:50:30.000Z',
      id: null,
    })
  })

  it('takes the look-back from the last change when the server time is unknown, or none at 0', () => {
    expect(passEnd(null, last, undefined, tenMinutes)).toEqual({
      stamp: '2026-01-01T09:50:00.000Z',
      id: null,
    })
    expect(passEnd(null, last, time('2026-01-01T10:00:01Z'), 0)).toEqual(last)
    expect(passEnd(null, null, undefined, tenMinutes)).toBeNull()
  })
})
