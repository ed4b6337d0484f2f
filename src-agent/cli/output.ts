/**
 * How CLI commands write their results (logs, progress and errors go to stderr). Commands write
 * through the CliOutput they are given: `stdoutOutput` for the CLI, a collector in tests.
 */

/** Where a command's results go. */
export interface CliOutput {
  /** One line of text. */
  line(text: string): void
  /** A value as indented JSON. */
  json(value: unknown): void
  /** Rows under a header, in columns padded to the widest cell. */
  table(header: string[], rows: string[][]): void
}

/** A CliOutput that hands `write` each result as text, newline included. */
export function cliOutput(write: (text: string) => void): CliOutput {
  const line = (text: string): void => write(`${text}\n`)
  return {
    line,
    json: (value) => line(JSON.stringify(value, null, 2)),
    table: (header, rows) => line(formatTable(header, rows)),
  }
}

/** The CLI's results: process.stdout. */
export const stdoutOutput: CliOutput = cliOutput((text) => {
  process.stdout.write(text)
})

function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd()
  return [line(header), ...rows.map(line)].join('\n')
}
