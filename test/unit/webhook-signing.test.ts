import { createHmac } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { checkHmacSignature } from '../../src-agent/connectors/webhook-signing.js'

const key = 'whsec-unit-test-key-0001'
const body = Buffer.from('{"event_id":"e1"}')
const now = new Date('2026-03-01T12:00:00Z')
const ts = String(now.getTime() / 1000)
const sign = (k: string, t: string, b: Buffer) =>
  createHmac('sha256', k).update(`v0:${t}:`).update(b).digest('hex')

const check = (overrides: Partial<Parameters<typeof checkHmacSignature>[0]> = {}) =>
  checkHmacSignature({
    key,
    timestamp: ts,
    signature: sign(key, ts, body),
    signed: (t) => [`v0:${t}:`, body],
    receivedAt: now,
    ...overrides,
  })

describe('checkHmacSignature', () => {
  it('accepts the signature of the exact body and timestamp', () => {
    expect(check()).toEqual({ ok: true })
    expect(check({ signature: sign(key, ts, body).toUpperCase() })).toEqual({ ok: true })
  })

  it('refuses another body, another key, or a signature for another timestamp', () => {
    const other = Buffer.from('{"event_id":"e2"}')
    expect(check({ signature: sign(key, ts, other) })).toMatchObject({ ok: false, status: 401 })
    expect(check({ signature: sign(`${key}x`, ts, body) })).toMatchObject({ ok: false })
    const earlier = String(Number(ts) - 1)
    expect(check({ timestamp: earlier })).toMatchObject({
      ok: false,
      reason: 'the signature does not match',
    })
  })

  it('refuses a timestamp outside the tolerance, whichever way', () => {
    const at = (offset: number) => {
      const t = String(Number(ts) + offset)
      return check({ timestamp: t, signature: sign(key, t, body) })
    }
    expect(at(-300)).toEqual({ ok: true })
    expect(at(300)).toEqual({ ok: true })
    expect(at(-301)).toMatchObject({ ok: false, reason: 'the timestamp is more than 300 s away' })
    expect(at(301)).toMatchObject({ ok: false, status: 401 })
  })

  it('refuses missing parts without quoting the key or the expected signature', () => {
    const results = [
      check({ key: undefined }),
      check({ key: '' }),
      check({ signature: undefined }),
      check({ timestamp: undefined }),
      check({ timestamp: '12.5' }),
      check({ signature: 'not-hex' }),
      check({ signature: 'ab' }),
    ]
    for (const result of results) {
      expect(result).toMatchObject({ ok: false, status: 401 })
      const text = JSON.stringify(result)
      expect(text).not.toContain(key)
      expect(text).not.toContain(sign(key, ts, body))
    }
  })
})
