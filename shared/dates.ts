/**
 * False for text starting `YYYY-MM-DD` (a year of 4 to 6 digits, signed or not, after any white
 * space) whose month has no such day (`2025-02-30`, which `Date.parse` would roll over to March
 * 2); any other text passes, for the parser to judge.
 *
 * Every record's dates pass here, so the digits are read in place: no match array, no
 * substrings (`/^\s*([+-]?\d{4,6})-(\d{2})-(\d{2})/` matches the same texts).
 */
export function isCalendarDay(text: string): boolean {
  let at = 0
  while (at < text.length && isWhiteSpace(text.charCodeAt(at))) at++
  const sign = text.charCodeAt(at)
  if (sign === PLUS || sign === MINUS) at++
  const yearStart = at
  let year = 0
  while (at < text.length && at - yearStart < 6 && isDigit(text.charCodeAt(at))) {
    year = year * 10 + (text.charCodeAt(at) - ZERO)
    at++
  }
  if (at - yearStart < 4 || text.charCodeAt(at) !== MINUS) return true
  const month = twoDigits(text, at + 1)
  if (month < 0 || text.charCodeAt(at + 3) !== MINUS) return true
  const day = twoDigits(text, at + 4)
  if (day < 0) return true
  if (sign === MINUS) year = -year
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
  const days = month === 2 ? (leap ? 29 : 28) : (THIRTY_DAYS >> month) & 1 ? 30 : 31
  return month >= 1 && month <= 12 && day >= 1 && day <= days
}

/** Bit n set: month n has 30 days (April, June, September, November). */
const THIRTY_DAYS = (1 << 4) | (1 << 6) | (1 << 9) | (1 << 11)
const ZERO = 0x30
const PLUS = 0x2b
const MINUS = 0x2d

function isDigit(code: number): boolean {
  return code >= ZERO && code <= ZERO + 9
}

/** The two digits at `at` as a number, or -1. */
function twoDigits(text: string, at: number): number {
  const tens = text.charCodeAt(at)
  const ones = text.charCodeAt(at + 1)
  return isDigit(tens) && isDigit(ones) ? (tens - ZERO) * 10 + (ones - ZERO) : -1
}

/** What `\s` matches in a JavaScript regular expression. */
function isWhiteSpace(code: number): boolean {
  if (code <= 0x20) return code === 0x20 || (code >= 0x09 && code <= 0x0d)
  return (
    code === 0xa0 ||
    code === 0x1680 ||
    (code >= 0x2000 && code <= 0x200a) ||
    code === 0x2028 ||
    code === 0x2029 ||
    code === 0x202f ||
    code === 0x205f ||
    code === 0x3000 ||
    code === 0xfeff
  )
}
