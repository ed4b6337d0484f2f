/** What the CLI's command modules share: the database for one command, input files, wording. */
import { readFile } from 'node:fs/promises'
import { InvalidArgumentError } from 'commander'
import type { DbHandle } from '../../db/client.js'
import { ConfigError, describeError } from '../../shared/errors.js'
import { openDatabase, type Env } from '../config.js'
import type { CliOutput } from './output.js'
import type { Logger } from '../logging/logger.js'

/**
 * What every command gets: the environment, the logger, who runs it (for the audit log) and
 * where its results go.
 */
export interface CliContext {
  env: Env
  log: Logger
  userId: string
  /** stdoutOutput for the CLI; tests pass a collector. */
  out: CliOutput
}

/** Opens the database, runs `fn`, and always closes it (and stops an embedded server we started). */
export async function withDatabase<T>(
  ctx: CliContext,
  fn: (handle: DbHandle) => Promise<T>,
): Promise<T> {
  const database = await openDatabase(ctx)
  try {
    return await fn(database.handle)
  } finally {
    await database.close()
  }
}

/** Reads a text file; errors name the file and never quote its content (it may hold secrets). */
export async function readTextFile(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code
    const reason =
      code === 'ENOENT'
        ? 'it does not exist'
        : code === 'EISDIR'
          ? 'it is a directory'
          : code === 'EACCES'
            ? 'permission denied'
            : describeError(cause)
    throw new ConfigError('config_missing', `Cannot read the ${what} ${file}: ${reason}.`, {
      cause,
    })
  }
}

/** Reads and parses a JSON file; errors name the file and never quote its content (it may hold secrets). */
export async function readJsonFile(file: string, what: string): Promise<unknown> {
  const text = await readTextFile(file, what)
  try {
    return JSON.parse(text) as unknown
  } catch {
    throw new ConfigError(
      'config_invalid',
      `The ${what} ${file} is not valid JSON${jsonErrorPlace(text)}.`,
    )
  }
}

/** " (line L, column C)" of the syntax error, from the offset V8 reports; never the text around it. */
function jsonErrorPlace(text: string): string {
  try {
    JSON.parse(text)
  } catch (err) {
    const match = err instanceof Error ? /position (\d+)/.exec(err.message) : null
    if (match) {
      const before = text.slice(0, Number(match[1]))
      const line = before.split('\n').length
      const column = before.length - before.lastIndexOf('\n')
      return ` (line ${line}, column ${column})`
    }
    if (err instanceof Error && /end of JSON input/.test(err.message)) return ' (it ends too early)'
  }
  return ''
}

export function positiveInt(value: string): number {
  const n = Number(value)
  if (!Number.isInteger(n) || n <= 0)
    throw new InvalidArgumentError('expected a positive whole number.')
  return n
}

export function plural(n: number, noun: string, nouns = `${noun}s`): string {
  return `${n} ${n === 1 ? noun : nouns}`
}

export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim()
}

/** `{ key: value }` when the option was given, `{}` otherwise (exactOptionalPropertyTypes). */
export function pick<T extends object, K extends keyof T>(obj: T, key: K): Partial<Pick<T, K>> {
  return obj[key] === undefined ? {} : ({ [key]: obj[key] } as Partial<Pick<T, K>>)
}
