/** How CLI commands write results to stdout (logs and errors go to stderr). */

/** One line of text on stdout. */
export function print(text: string): void {
  process.stdout.write(`${text}\n`)
}

/** A value as indented JSON on stdout. */
export function printJson(value: unknown): void {
  print(JSON.stringify(value, null, 2))
}

/** Rows under a header, in columns padded to the widest cell. */
export function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd()
  print([line(header), ...rows.map(line)].join('\n'))
}
