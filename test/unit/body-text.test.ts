import { describe, expect, it } from 'vitest'
import { bodyText } from '../../src-agent/connectors/transport.js'

describe('bodyText', () => {
  it('reads an ASCII body as the same text, control characters included', () => {
    const text = 'Id,Name\n003A,"Jane\tDoe"\r\n003B,\u0000x\u007f\n'
    expect(bodyText(Buffer.from(text, 'utf8'))).toBe(text)
  })

  it('reads UTF-8 beyond ASCII, however late in the body it first comes', () => {
    for (const tail of ['é', 'Zoë Ångström', '日本語', 'שלום', '🙂 emoji']) {
      const text = `${'a,'.repeat(50_000)}${tail}`
      expect(bodyText(Buffer.from(text, 'utf8'))).toBe(text)
    }
  })

  it('reads bytes that are not UTF-8 as Node does: each becomes U+FFFD', () => {
    const bytes = Buffer.from([0x61, 0xff, 0x62, 0xc3, 0x28, 0x80])
    expect(bodyText(bytes)).toBe(bytes.toString('utf8'))
    expect(bodyText(bytes)).toContain('\ufffd')
  })

  it('reads an empty body as empty text', () => {
    expect(bodyText(Buffer.alloc(0))).toBe('')
  })
})
