/**
 * The one logger of the agent: pino, writing JSON lines to stderr (stdout is for CLI output),
 * with secrets redacted at every level, in every part of the line.
 */
import pino from 'pino'
import { ConfigError } from '../../shared/errors.js'
import { redact, scrubString } from '../../shared/redact.js'

export type Logger = pino.Logger

/** Options for `createLogger`. */
export interface LoggerOptions {
  /** Defaults to LOG_LEVEL, then 'info'. */
  level?: string
  /** Defaults to stderr (fd 2, synchronous). */
  destination?: pino.DestinationStream | NodeJS.WritableStream
  name?: string
}

/** Levels LOG_LEVEL accepts. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

/** A logger whose every output line has secrets redacted; child loggers inherit that. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = resolveLevel(options.level)
  const destination = options.destination ?? pino.destination({ fd: 2, sync: true })
  const logger = pino(
    {
      level,
      ...(options.name === undefined ? {} : { name: scrubString(options.name) }),
      formatters: {
        // Root bindings only: pino swaps this formatter for identity in child loggers (see below).
        bindings: (bindings) => redactObject(bindings),
        // The merge object, after pino built it and before serializers run.
        log: (object) => (alreadyRedacted.has(object) ? object : redactObject(object)),
      },
      // Serializers run AFTER formatters.log, so `err` must redact on its own.
      serializers: { err: (err: unknown) => redact(err) },
      hooks: {
        logMethod(args, method) {
          method.apply(this, redactArguments(args))
        },
        // Last line of defence: whatever a custom serializer or msgPrefix let through.
        streamWrite: (line) => scrubString(line),
      },
    },
    destination,
  )
  redactChildBindings(logger)
  return logger
}

/** The process-wide logger, created on first use so that importing this module has no effect. */
export function getLogger(): Logger {
  processLogger ??= createLogger()
  return processLogger
}

/** The process-wide logger as a value: `log.info(...)`. Resolves `getLogger()` on each access. */
export const log: Logger = new Proxy(Object.create(null) as Logger, {
  get(_target, property) {
    const logger = getLogger()
    const value: unknown = Reflect.get(logger, property, logger)
    // Bound, so pino sees the real logger as `this` (child() prototypes from it).
    return typeof value === 'function'
      ? (value as (...a: unknown[]) => unknown).bind(logger)
      : value
  },
  set(_target, property, value: unknown) {
    return Reflect.set(getLogger(), property, value)
  },
})

// --- implementation ---

let processLogger: Logger | undefined

/** Merge objects the logMethod hook already redacted; formatters.log skips a second deep copy. */
const alreadyRedacted = new WeakSet<object>()

function resolveLevel(explicit: string | undefined): string {
  const fromEnv = process.env.LOG_LEVEL
  const raw = explicit ?? (fromEnv === undefined || fromEnv.trim() === '' ? 'info' : fromEnv)
  const level = raw.trim().toLowerCase()
  if ((LOG_LEVELS as readonly string[]).includes(level)) return level
  const shown = JSON.stringify(raw.length > 40 ? `${raw.slice(0, 40)}...` : raw)
  const source = explicit === undefined ? `LOG_LEVEL is set to ${shown}` : `Log level ${shown}`
  throw new ConfigError(
    'config_invalid',
    `${source}, which is not a log level. Set LOG_LEVEL to one of: ${LOG_LEVELS.join(', ')}.`,
  )
}

function redactObject(object: object): Record<string, unknown> {
  const copy = redact(object)
  return typeof copy === 'object' && copy !== null ? (copy as Record<string, unknown>) : {}
}

/**
 * pino's call shapes: (msg, ...fmt), (obj, msg?, ...fmt), (err, msg?, ...fmt). The message and
 * format arguments never pass through formatters.log, so they are scrubbed here.
 */
function redactArguments(args: unknown[]): Parameters<pino.LogFn> {
  const out = args.map((arg, index) => {
    if (typeof arg === 'string') return scrubString(arg)
    if (index === 0 && typeof arg === 'object' && arg !== null) {
      // pino takes the message from err.message when none is given: redact the Error here,
      // before that happens, and keep it under `err` where pino would have put it.
      const merge = arg instanceof Error ? { err: redact(arg) } : redactObject(arg)
      alreadyRedacted.add(merge)
      return merge
    }
    // %s would print a redacted Error as [object Object]; give it its usual string form.
    if (arg instanceof Error) return `${arg.name}: ${scrubString(arg.message)}`
    if (typeof arg === 'object' && arg !== null) return redact(arg)
    return arg
  })
  return out as Parameters<pino.LogFn>
}

interface PinoMethods {
  child: (this: Logger, bindings: pino.Bindings, options?: pino.ChildLoggerOptions) => Logger
  setBindings: (this: Logger, bindings: pino.Bindings) => void
}

/**
 * pino applies formatters.bindings to the root logger only: child() replaces it with an identity
 * function, so `log.child({ apiKey })` would print the key. Wrap child() and setBindings() on the
 * root; children are created with Object.create(parent) and inherit the wrappers.
 */
function redactChildBindings(root: Logger): void {
  // pino's own methods, from the prototype; typed loosely because child() is generic in levels.
  const { child, setBindings } = Object.getPrototypeOf(root) as PinoMethods
  Object.defineProperty(root, 'child', {
    configurable: true,
    writable: true,
    value: function redactedChild(
      this: Logger,
      bindings: pino.Bindings,
      options?: pino.ChildLoggerOptions,
    ): Logger {
      const safeOptions =
        options?.msgPrefix === undefined
          ? options
          : { ...options, msgPrefix: scrubString(options.msgPrefix) }
      return child.call(this, redactObject(bindings), safeOptions)
    },
  })
  Object.defineProperty(root, 'setBindings', {
    configurable: true,
    writable: true,
    value: function redactedSetBindings(this: Logger, bindings: pino.Bindings): void {
      setBindings.call(this, redactObject(bindings))
    },
  })
}
