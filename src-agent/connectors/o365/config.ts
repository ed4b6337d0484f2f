/**
 * A Microsoft 365 connection: an app registration in the customer's Entra ID tenant with
 * application permissions (Calendars.Read, Mail.ReadBasic.All, User.Read.All) granted by an
 * admin, and a client secret. Syncs read Graph as the app (client credentials), for the mailboxes
 * the tenant allows. The hosts are configurable for national clouds (and the tests' fake).
 */
import { z } from 'zod'

const guid = z
  .string()
  .trim()
  .regex(
    /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i,
    'expected an ID like 00000000-0000-0000-0000-000000000000 (the Overview page of the app registration shows it)',
  )
const httpsUrl = z
  .url()
  .refine((value) => value.startsWith('https://'), 'must be an https:// URL')
  .transform((value) => value.replace(/\/+$/, ''))

export const o365ConfigSchema = z.object({
  /** The customer's directory (tenant) ID. */
  tenantId: guid,
  /** The app registration's Application (client) ID. */
  clientId: guid,
  /** A client secret's Value (not its Secret ID). */
  clientSecret: z.string().min(1, 'is required: the Value of a client secret of the app'),
  /** The identity platform's host (national clouds: https://login.microsoftonline.us …). */
  authority: httpsUrl.default('https://login.microsoftonline.com'),
  /** Graph's base, version included (national clouds: https://graph.microsoft.us/v1.0 …). */
  graphBaseUrl: httpsUrl.default('https://graph.microsoft.com/v1.0'),
  /** Participants on these domains (exact, case-insensitive) produce activities; none at first. */
  allowedExternalDomains: z.array(z.string().trim().toLowerCase().min(1)).default([]),
  /** User principal names whose mailboxes are read; every user with a mailbox when absent. */
  mailboxes: z.array(z.string().trim().min(1)).optional(),
})
export type O365Config = z.infer<typeof o365ConfigSchema>

/** What the admin-consent sign-in needs: the app, and the tenant to ask (any work tenant by default). */
export const o365SignInConfigSchema = o365ConfigSchema.extend({
  tenantId: z.union([guid, z.literal('organizations')]).default('organizations'),
})
export type O365SignInConfig = z.infer<typeof o365SignInConfigSchema>

export const O365_SECRET_KEYS = ['clientSecret'] as const
