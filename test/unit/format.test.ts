import { describe, expect, it } from 'vitest'
import { formatRelative } from '../../src-renderer/lib/format.js'

describe('formatRelative', () => {
  const now = Date.parse('2026-12-03T12:00:00Z')
  const at = (ms: number): string => new Date(now + ms).toISOString()

  it('reads each distance in the unit it rounds to', () => {
    expect(formatRelative(at(30_000), now)).toBe('in less than a minute')
    expect(formatRelative(at(-12 * 60_000), now)).toBe('12 min ago')
    // 59 min 50 s is an hour away, not "60 min".
    expect(formatRelative(at(3_590_000), now)).toBe('in 1 h')
    expect(formatRelative(at(-5 * 3_600_000), now)).toBe('5 h ago')
    expect(formatRelative(at(23.8 * 3_600_000), now)).toBe('in 1 d')
    expect(formatRelative(at(-3 * 86_400_000), now)).toBe('3 d ago')
  })

  it('says never for no time at all', () => {
    expect(formatRelative(null, now)).toBe('never')
  })
})
