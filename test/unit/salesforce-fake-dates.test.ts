import { describe, expect, it } from 'vitest'
import { isoDateTime } from '../fakes/salesforce.js'

describe('the Salesforce fake', () => {
  it('formats datetimes exactly as toISOString does', () => {
    const edges = [
      0,
      -1,
      1,
      999,
      86_399_999,
      86_400_000,
      -86_400_000,
      Date.UTC(2025, 0, 1),
      Date.UTC(2024, 1, 29, 23, 59, 59, 999),
      Date.UTC(1969, 11, 31, 23, 59, 59, 1),
      Date.UTC(9999, 11, 31, 23, 59, 59, 999),
      Date.UTC(10000, 0, 1),
      Date.UTC(-1, 5, 15, 12, 30),
      1.5,
      -0.5,
    ]
    // A walk over four centuries in uneven steps, so that every field meets its own edges.
    const values = [...edges]
    for (let ms = Date.UTC(1900, 0, 1); ms < Date.UTC(2300, 0, 1); ms += 86_399_997 * 7 + 1) {
      values.push(ms)
    }
    for (const ms of values) expect(isoDateTime(ms), String(ms)).toBe(new Date(ms).toISOString())
    expect(() => isoDateTime(Number.NaN)).toThrow(RangeError)
  })
})
