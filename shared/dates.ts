/**
 * False for text starting `YYYY-MM-DD` whose month has no such day (`2025-02-30`, which
 * `Date.parse` would roll over to March 2); any other text passes, for the parser to judge.
 */
export function isCalendarDay(text: string): boolean {
  const match = /^\s*([+-]?\d{4,6})-(\d{2})-(\d{2})/.exec(text)
  if (!match) return true
  const year = Number(match[1])
  const month = Number(match[2])
  const day = Number(match[3])
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
  const days = month === 2 ? (leap ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31
  return month >= 1 && month <= 12 && day >= 1 && day <= days
}
