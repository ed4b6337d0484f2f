/**
 * The app's non-secret settings behind a small interface: electron-store in the app, a JSON file
 * or memory in tests. Every change is parsed with shared/settings.ts before it is kept, so a bad
 * value is refused with a message that names it and the stored settings stay as they were.
 */
import type { z } from 'zod'
import { settingsPatchSchema, settingsSchema } from '../../shared/settings.js'
import type { Settings, SettingsPatch } from '../../shared/settings.js'

/** Where settings live: reads and writes the whole object. */
export interface SettingsBackend {
  read(): unknown
  write(settings: Settings): void
}

export class SettingsError extends Error {}

export class SettingsStore {
  readonly #backend: SettingsBackend
  #current: Settings

  constructor(backend: SettingsBackend) {
    this.#backend = backend
    const stored = settingsSchema.safeParse(backend.read() ?? {})
    // Settings a newer or older version wrote that no longer parse fall back to the defaults
    // key by key, never to a crash at start.
    this.#current = stored.success ? stored.data : recoverSettings(backend.read())
  }

  get(): Settings {
    return structuredClone(this.#current)
  }

  /** Validates `patch`, keeps it, and returns the settings now in force with what changed. */
  update(patch: unknown): { settings: Settings; changed: Array<keyof Settings> } {
    const parsedPatch = settingsPatchSchema.safeParse(patch)
    if (!parsedPatch.success) throw new SettingsError(describeIssues(parsedPatch.error))
    const next = settingsSchema.safeParse({ ...this.#current, ...stripUndefined(parsedPatch.data) })
    if (!next.success) throw new SettingsError(describeIssues(next.error))
    const changed = (Object.keys(next.data) as Array<keyof Settings>).filter(
      (key) => JSON.stringify(next.data[key]) !== JSON.stringify(this.#current[key]),
    )
    this.#backend.write(next.data)
    this.#current = next.data
    return { settings: this.get(), changed }
  }
}

/** Settings in memory only (tests, and a first run before anything is saved). */
export function memorySettings(initial: unknown = {}): SettingsBackend {
  let value: unknown = initial
  return { read: () => value, write: (settings) => (value = structuredClone(settings)) }
}

export type { Settings, SettingsPatch }

// --- implementation ---

function recoverSettings(raw: unknown): Settings {
  const defaults = settingsSchema.parse({})
  if (typeof raw !== 'object' || raw === null) return defaults
  const kept: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
    if (settingsSchema.safeParse({ ...defaults, [key]: value }).success) kept[key] = value
  }
  return settingsSchema.parse({ ...defaults, ...kept })
}

function stripUndefined(patch: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined))
}

function describeIssues(error: z.ZodError): string {
  const issue = error.issues[0]
  if (!issue) return 'The settings are not valid.'
  const where = issue.path.length > 0 ? `${issue.path.map(String).join('.')}: ` : ''
  return `Setting ${where}${issue.message}`
}
