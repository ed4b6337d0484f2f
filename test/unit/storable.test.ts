import { describe, expect, it } from 'vitest'
import {
  boundedMessage,
  isStorableText,
  storableText,
  storableValue,
} from '../../src-agent/pipeline/storable.js'

const hex = (text: string) => Buffer.from(text, 'utf8').toString('hex')

describe('storableText', () => {
  it('removes NUL characters', () => {
    expect(storableText('Soft\u0000ware')).toBe('Software')
    expect(storableText('\u0000a\u0000\u0000b\u0000')).toBe('ab')
    expect(storableText('\u0000')).toBe('')
  })

  it('replaces a lone high or low surrogate with U+FFFD', () => {
    expect(storableText('Bad\ud800Surrogate')).toBe('Bad\ufffdSurrogate')
    expect(storableText('\udbff')).toBe('\ufffd')
    expect(storableText('end\ud83d')).toBe('end\ufffd')
    expect(storableText('\udc00start')).toBe('\ufffdstart')
    expect(storableText('mid\udfffdle')).toBe('mid\ufffddle')
    // A low half before a high half is two lone halves, not a pair.
    expect(storableText('\ude00\ud83d')).toBe('\ufffd\ufffd')
  })

  it('never joins two halves a NUL kept apart into a character', () => {
    expect(storableText('\ud83d\u0000\ude00')).toBe('\ufffd\ufffd')
  })

  it('keeps surrogate pairs, emoji, RTL and combining text byte-exact, without copying', () => {
    const texts = [
      'plain ASCII',
      'Zoë Müller',
      '😀',
      '👩🏽‍💻 and 👨‍👩‍👧 (ZWJ sequences)',
      'مرحبا بالعالم',
      'שלום עולם',
      'e\u0301 combining, \u200f RLM, \u202e override',
      '\u{10FFFF} \ufffe \ufffd',
      '𝔘𝔫𝔦𝔠𝔬𝔡𝔢 \ud83d\ude00',
    ]
    for (const text of texts) {
      expect(isStorableText(text)).toBe(true)
      expect(storableText(text)).toBe(text)
      expect(hex(storableText(text))).toBe(hex(text))
    }
  })

  it('matches toWellFormed and NUL removal on every mix of code units', () => {
    const units = ['a', '\u0000', '\ud800', '\udbff', '\udc00', '\udfff', 'é', '\ud83d\ude00']
    const reference = (text: string) =>
      (text as unknown as { toWellFormed(): string }).toWellFormed().replaceAll('\u0000', '')
    for (const a of units) {
      for (const b of units) {
        for (const c of units) {
          const text = a + b + c
          expect(storableText(text), JSON.stringify(text)).toBe(reference(text))
          expect(isStorableText(storableText(text))).toBe(true)
        }
      }
    }
  })
})

describe('storableValue', () => {
  it('cleans strings and keys at any depth of objects and arrays', () => {
    const raw = {
      Industry: 'Soft\u0000ware',
      'Bad\u0000Key': 1,
      nested: { list: ['ok', 'x\ud800', { deep: ['\u0000', 'y\udc00'] }], n: 5, f: false, z: null },
      emoji: '😀',
    }
    expect(storableValue(raw)).toEqual({
      Industry: 'Software',
      BadKey: 1,
      nested: { list: ['ok', 'x\ufffd', { deep: ['', 'y\ufffd'] }], n: 5, f: false, z: null },
      emoji: '😀',
    })
  })

  it('returns clean values as they are and never changes its input', () => {
    const clean = { a: 'fine', b: ['😀', { c: 'مرحبا' }], d: new Date(0), e: 1 }
    expect(storableValue(clean)).toBe(clean)
    const dirty = { keep: { a: 'same' }, fix: ['x\u0000'] }
    const before = JSON.stringify(dirty)
    const cleaned = storableValue(dirty) as typeof dirty
    expect(JSON.stringify(dirty)).toBe(before)
    expect(cleaned.fix).toEqual(['x'])
    // The untouched branch is shared, not copied.
    expect(cleaned.keep).toBe(dirty.keep)
  })

  it('keeps a "__proto__" key a key and leaves a cycle as it is', () => {
    const parsed = JSON.parse('{"__proto__": "a\\u0000", "b": 1}') as Record<string, unknown>
    const cleaned = storableValue(parsed) as Record<string, unknown>
    expect(Object.getPrototypeOf(cleaned)).toBe(Object.prototype)
    expect(Object.getOwnPropertyDescriptor(cleaned, '__proto__')?.value).toBe('a')
    const cyclic: Record<string, unknown> = { a: 'x' }
    cyclic.self = cyclic
    expect(storableValue(cyclic)).toBe(cyclic)
  })
})

describe('boundedMessage', () => {
  it('keeps a short message and cuts a long one to the limit with an ellipsis', () => {
    expect(boundedMessage('short')).toBe('short')
    const cut = boundedMessage('x'.repeat(5000))
    expect(cut).toHaveLength(1000)
    expect(cut.endsWith('x…')).toBe(true)
    expect(boundedMessage('abcdef', 4)).toBe('abc…')
  })

  it('never cuts a surrogate pair in half and stores no NUL', () => {
    expect(boundedMessage(`${'a'.repeat(997)}😀😀`)).toBe(`${'a'.repeat(997)}😀…`)
    const cut = boundedMessage(`${'a'.repeat(998)}😀😀`)
    expect(isStorableText(cut)).toBe(true)
    expect(cut).toBe(`${'a'.repeat(998)}…`)
    expect(boundedMessage('a\u0000b')).toBe('ab')
  })
})
