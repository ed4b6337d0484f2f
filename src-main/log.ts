/**
 * Main's log: JSON lines (time, level, message, fields) to a file and stderr, every line passed
 * through the agent's redaction (shared/redact.ts), so no token or password reaches it from main
 * either. The agent's own stderr is appended to the same file, scrubbed again on the way.
 */
import { appendFileSync, mkdirSync } from 'node:fs'
import path from 'node:path'
import { redact, scrubString } from '../shared/redact.js'

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

export interface MainLog {
  (level: LogLevel, message: string, fields?: Record<string, unknown>): void
  /** One line of the agent process's stderr, kept as it came (after scrubbing). */
  agentLine(line: string): void
  readonly file: string | null
}

export function createMainLog(options: { dir: string | null; echo?: boolean }): MainLog {
  const file = options.dir ? path.join(options.dir, 'main.log') : null
  if (options.dir) mkdirSync(options.dir, { recursive: true })
  const write = (line: string): void => {
    const safe = `${scrubString(line)}\n`
    if (file) {
      try {
        appendFileSync(file, safe)
      } catch {
        // A full disk must not take the app down; stderr still has it.
      }
    }
    if (options.echo !== false) process.stderr.write(safe)
  }
  const log = ((level, message, fields) => {
    const safeFields = fields ? (redact(fields) as Record<string, unknown>) : {}
    write(JSON.stringify({ time: new Date().toISOString(), level, msg: message, ...safeFields }))
  }) as MainLog
  log.agentLine = (line) => {
    if (line.trim()) write(line)
  }
  Object.defineProperty(log, 'file', { value: file })
  return log
}

/** Errors as log fields: the message and stack, redacted like everything else. */
export function errorFields(err: unknown): Record<string, unknown> {
  return err instanceof Error ? { error: err.message, stack: err.stack } : { error: String(err) }
}
