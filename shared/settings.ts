import { z } from 'zod'

/** The loopback port of the browser sign-in; Salesforce matches the callback URL exactly. */
export const DEFAULT_REDIRECT_PORT = 17865

const hostName = z
  .string()
  .trim()
  .min(1, 'Enter a host name or address.')
  .max(253)
  .regex(/^[A-Za-z0-9.:[\]_-]+$/, 'A host name has only letters, digits, dots, dashes and colons.')
const port = z
  .number()
  .int('A port is a whole number.')
  .min(1, 'A port is between 1 and 65535.')
  .max(65_535, 'A port is between 1 and 65535.')

/** Where the agent keeps its data: its own embedded Postgres, or a shared one. */
export const databaseSettingsSchema = z.discriminatedUnion('mode', [
  z.object({ mode: z.literal('embedded') }),
  z.object({
    mode: z.literal('external'),
    host: hostName,
    port: port.default(5432),
    database: z.string().trim().min(1, 'Enter the database name.').max(63),
    user: z.string().trim().min(1, 'Enter the database user.').max(63),
    /** Require TLS to the server. The password is in the OS keychain, never here. */
    ssl: z.boolean().default(true),
  }),
])

/** Which Temporal runs the schedules: a local dev server the agent starts, or a shared one. */
export const temporalSettingsSchema = z.discriminatedUnion('mode', [
  z.object({ mode: z.literal('embedded') }),
  z.object({
    mode: z.literal('external'),
    /** host:port of the Temporal frontend, like TEMPORAL_ADDRESS. */
    address: z
      .string()
      .trim()
      .regex(/^[A-Za-z0-9.[\]:_-]+:\d{1,5}$/, 'Give the address as host:port, e.g. temporal:7233.'),
    namespace: z.string().trim().min(1).max(255).default('default'),
  }),
])

export const windowBoundsSchema = z.object({
  x: z.number().int().optional(),
  y: z.number().int().optional(),
  width: z.number().int().min(400).max(20_000),
  height: z.number().int().min(300).max(20_000),
})

/** Each setting, as a change gives it: whole, and without a default filled in. */
const settingFields = {
  windowBounds: windowBoundsSchema.nullable(),
  selectedTenant: z.string().min(1).max(64).nullable(),
  database: databaseSettingsSchema,
  temporal: temporalSettingsSchema,
  /**
   * The port of the sign-in callback on 127.0.0.1. The callback URL registered with Salesforce
   * (http://127.0.0.1:<port>/callback) must name this very port.
   */
  redirectPort: port,
  /** Where the embedded database, Temporal state and logs live; null = the app's data folder. */
  dataFolder: z.string().min(1).max(4096).nullable(),
}

/**
 * The desktop app's settings: nothing secret (passwords and the encryption key are in the OS
 * keychain). Every change is parsed before it is kept.
 */
export const settingsSchema = z.object({
  windowBounds: settingFields.windowBounds.default(null),
  selectedTenant: settingFields.selectedTenant.default(null),
  database: settingFields.database.default({ mode: 'embedded' }),
  temporal: settingFields.temporal.default({ mode: 'embedded' }),
  redirectPort: settingFields.redirectPort.default(DEFAULT_REDIRECT_PORT),
  dataFolder: settingFields.dataFolder.default(null),
})

export type Settings = z.output<typeof settingsSchema>
/** A change: some settings, each replaced whole; the others stay as they are. */
export const settingsPatchSchema = z.object(settingFields).partial()
export type SettingsPatch = z.input<typeof settingsPatchSchema>
