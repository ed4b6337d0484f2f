import { describe, expect, it } from 'vitest'
import { isCalendarDay } from '../../shared/dates.js'

/** The rule as a regular expression: what isCalendarDay must answer for every text. */
function byPattern(text: string): boolean {
  const match = /^\s*([+-]?\d{4,6})-(\d{2})-(\d{2})/.exec(text)
  if (!match) return true
  const year = Number(match[1])
  const month = Number(match[2])
  const day = Number(match[3])
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
  const days = month === 2 ? (leap ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31
  return month >= 1 && month <= 12 && day >= 1 && day <= days
}

describe('isCalendarDay', () => {
  it('refuses a day its month does not have, and passes the rest', () => {
    expect(isCalendarDay('2025-02-30')).toBe(false)
    expect(isCalendarDay('2025-02-29T00:00:00Z')).toBe(false)
    expect(isCalendarDay('2024-02-29T00:00:00Z')).toBe(true)
    expect(isCalendarDay('1900-02-29')).toBe(false)
    expect(isCalendarDay('2000-02-29')).toBe(true)
    expect(isCalendarDay('2025-04-31')).toBe(false)
    expect(isCalendarDay('2025-13-01')).toBe(false)
    expect(isCalendarDay('2025-00-10')).toBe(false)
    expect(isCalendarDay('2025-01-00')).toBe(false)
    expect(isCalendarDay(' \u00a0\t2025-06-31')).toBe(false)
    expect(isCalendarDay('+012025-02-30')).toBe(false)
    expect(isCalendarDay('-000004-02-29')).toBe(true)
    expect(isCalendarDay('2025-12-31T23:59:59.999Z')).toBe(true)
    expect(isCalendarDay('March 3, 2025')).toBe(true)
    expect(isCalendarDay('1234567-02-30')).toBe(true)
    expect(isCalendarDay('')).toBe(true)
  })

  it('skips the white space the pattern skips, and only that', () => {
    let spaces = 0
    for (let code = 0; code <= 0xffff; code++) {
      const text = `${String.fromCharCode(code)}2025-02-30`
      expect(isCalendarDay(text), `U+${code.toString(16)}`).toBe(byPattern(text))
      if (!byPattern(text)) spaces++
    }
    // The 25 characters \s matches, the ten digits (a longer year) and a sign.
    expect(spaces).toBe(37)
  })

  it('answers as the pattern does for any text', () => {
    const pieces = [
      '',
      ' ',
      '\t',
      '\u00a0',
      '\u2003',
      '\ufeff',
      'x',
      '+',
      '-',
      '0',
      '1',
      '2',
      '3',
      '9',
      '02',
      '29',
      '30',
      '31',
      '2024',
      '1900',
      '-',
      'T',
      '٣',
    ]
    let seed = 7
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31
      return seed % n
    }
    let checked = 0
    for (let i = 0; i < 50_000; i++) {
      let text = ''
      const length = random(9)
      for (let j = 0; j < length; j++) text += pieces[random(pieces.length)]
      if (random(2) === 0) {
        text = `${pieces[random(6)]}${['', '+', '-'][random(3)]}${String(random(10 ** 7)).padStart(
          random(8),
          '0',
        )}-${String(random(15)).padStart(2, '0')}-${String(random(33)).padStart(random(3), '0')}${text}`
      }
      expect(isCalendarDay(text), JSON.stringify(text)).toBe(byPattern(text))
      checked++
    }
    expect(checked).toBe(50_000)
  })
})
