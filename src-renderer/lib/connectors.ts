import type { IpcOutput } from '../../shared/ipc.js'
import type { Tone } from '../components/ui.js'
import { call } from './gtm.js'

type Connection = IpcOutput<'connections:list'>[number]
type Schedule = NonNullable<IpcOutput<'schedules:get'>>

/** Where an admin finds what a connector's form asks for, opened in the system browser. */
export const connectorGuides: Record<string, { url: string; text: string; initials: string }> = {
  salesforce: {
    initials: 'SF',
    url: 'https://help.salesforce.com/s/articleView?id=sf.connected_app_create.htm',
    text: 'Setup → App Manager → your connected app → Consumer Key. Use a connected app with the "api" and "refresh_token" scopes and http://127.0.0.1:<port>/callback as its callback URL.',
  },
  customerio: {
    initials: 'CIO',
    url: 'https://docs.customer.io/accounts-and-workspaces/managing-credentials/',
    text: 'Settings → Account Settings → API Credentials → App API Keys. The webhook signing key is on the Reporting Webhook you created (Data & Integrations → Reporting Webhooks).',
  },
  delivrai: {
    initials: 'DV',
    url: 'https://docs.delivr.ai/docs/authentication',
    text: 'Your Delivr.ai workspace → Settings → API. Ask your Delivr.ai contact for an intent-feed key if the page shows none.',
  },
  o365: {
    initials: 'MS',
    url: 'https://learn.microsoft.com/en-us/entra/identity-platform/quickstart-register-app',
    text: 'Microsoft Entra admin center → App registrations → your app: the Application (client) ID, the Directory (tenant) ID and a client secret under Certificates & secrets. Calendars.Read and Mail.ReadBasic.All need admin consent.',
  },
  fathom: {
    initials: 'FA',
    url: 'https://developers.fathom.ai/',
    text: 'Fathom → User Settings → API Access → Generate API key. The key sees the meetings its owner recorded or that were shared with them. The webhook secret is shown when you add a webhook.',
  },
}

export type DisplayStatus =
  'disconnected' | 'pending_auth' | 'connected' | 'syncing' | 'paused' | 'needs_reauth' | 'error'

export const statusLabels: Record<DisplayStatus, { label: string; tone: Tone }> = {
  disconnected: { label: 'Not connected', tone: 'idle' },
  pending_auth: { label: 'Waiting for sign-in', tone: 'info' },
  connected: { label: 'Connected', tone: 'ok' },
  syncing: { label: 'Syncing', tone: 'info' },
  paused: { label: 'Paused', tone: 'warn' },
  needs_reauth: { label: 'Needs re-auth', tone: 'bad' },
  error: { label: 'Error', tone: 'bad' },
}

/** The one status a connector card shows, from the connection, its schedule and a live sync. */
export function displayStatus(
  connection: Connection | undefined,
  options: { schedule?: Schedule | null | undefined; syncing?: boolean; signingIn?: boolean } = {},
): DisplayStatus {
  if (options.signingIn) return 'pending_auth'
  if (!connection || connection.status === 'disconnected') return 'disconnected'
  if (connection.needsReauth) return 'needs_reauth'
  if (options.syncing || connection.status === 'syncing' || options.schedule?.running)
    return 'syncing'
  if (connection.status === 'pending_auth') return 'pending_auth'
  if (connection.status === 'error') return 'error'
  if (options.schedule?.paused) return 'paused'
  return 'connected'
}

/** "Contacts" for `contacts`: stream ids read as words. */
export function streamLabel(stream: string): string {
  const words = stream.replace(/[_-]+/g, ' ')
  return words.charAt(0).toUpperCase() + words.slice(1)
}

/** A connector and, when it has one in this tenant, its connection. */
export async function loadConnection(
  tenantId: string,
  connectorType: string,
): Promise<{
  connector: IpcOutput<'connectors:list'>[number]
  connection: Connection | undefined
}> {
  const [connectors, connections] = await Promise.all([
    call('connectors:list'),
    call('connections:list', { tenantId }),
  ])
  const connector = connectors.find((c) => c.id === connectorType)
  if (!connector) throw new Error(`There is no connector named "${connectorType}".`)
  return { connector, connection: connections.find((c) => c.connectorType === connectorType) }
}
