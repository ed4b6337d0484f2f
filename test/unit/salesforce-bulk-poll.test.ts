import { describe, expect, it } from 'vitest'
import { pollDelay } from '../../src-agent/connectors/salesforce/bulk.js'

describe('Bulk job polling', () => {
  it('waits 100 ms after the first poll, then 1.5× longer each time, up to the longest wait', () => {
    const delays = Array.from({ length: 11 }, (_, i) => pollDelay(i + 1, 2_000))
    expect(delays).toEqual([100, 150, 225, 338, 506, 759, 1139, 1709, 2000, 2000, 2000])
  })

  it('never waits longer than the configured interval, however short it is', () => {
    expect(Array.from({ length: 4 }, (_, i) => pollDelay(i + 1, 5))).toEqual([5, 5, 5, 5])
    expect(Array.from({ length: 4 }, (_, i) => pollDelay(i + 1, 200))).toEqual([100, 150, 200, 200])
  })
})
