/**
 * Microsoft 365: calendar and email metadata of the tenant's mailboxes through Microsoft Graph,
 * as the app (application permissions granted by admin consent, client-credentials tokens).
 * Each mailbox is a partition of both streams, with delta links of its own, restartable alone.
 * Nothing is read before the tenant's admin accepted the data-processing terms, and only
 * participants on the allowlisted external domains produce activities.
 */
import { z } from 'zod'
import { AppError } from '../../../shared/errors.js'
import type { SyncResult } from '../../../shared/schemas.js'
import { probeHealth } from '../http.js'
import type { Connector, CredentialOptions, StreamDefinition, SyncOptions } from '../interface.js'
import { jsonCursorPage, readJsonCursor } from '../json-cursor.js'
import { connectorRegistry } from '../registry.js'
import { VENDOR, checkAppOnly } from './auth.js'
import { o365ConfigSchema, type O365Config } from './config.js'
import { DeltaExpired, NoMailbox, graphGet, type GraphPage } from './graph.js'
import { MESSAGE_FIELDS, eventRecord, messageRecord, type MailFolder } from './records.js'
import { o365SignIn } from './sign-in.js'

const DAY_MS = 86_400_000
/** The calendar window: this far back and this far ahead; renewed weekly. */
const CALENDAR_DAYS = 30
const CALENDAR_RENEW_MS = 7 * DAY_MS
/** Mail read on the first walk of a folder. */
const MAIL_DAYS = 30

const mapping = (
  sourceField: string,
  targetField: string,
  transform: 'none' | 'trim' | 'lowercase' = 'none',
) => ({
  sourceField,
  targetField,
  transform,
})

/** What calendar and mail activities share; each stream adds its own properties. */
const ACTIVITY_FIELDS = [
  mapping('activityId', 'externalId'),
  mapping('kind', 'type'),
  mapping('channel', 'channel'),
  mapping('occurredAt', 'occurredAt'),
  mapping('personEmail', 'personExternalId', 'lowercase'),
  mapping('subject', 'properties.subject', 'trim'),
]

const STREAMS: readonly StreamDefinition[] = [
  {
    id: 'calendar',
    name: 'Calendar',
    entityType: 'activity',
    partitioned: true,
    defaultMappings: [
      ...ACTIVITY_FIELDS,
      mapping('endsAt', 'properties.endsAt'),
      mapping('attendeeCount', 'properties.attendeeCount'),
      mapping('isCancelled', 'properties.isCancelled'),
      mapping('iCalUId', 'properties.iCalUId'),
      mapping('mailbox', 'properties.mailbox', 'lowercase'),
    ],
  },
  {
    id: 'mail',
    name: 'Email',
    entityType: 'activity',
    partitioned: true,
    defaultMappings: [
      ...ACTIVITY_FIELDS,
      mapping('conversationId', 'properties.conversationId'),
      mapping('hasAttachments', 'properties.hasAttachments'),
      mapping('mailbox', 'properties.mailbox', 'lowercase'),
    ],
  },
]

const calendarCursor = z.object({
  v: z.literal(1),
  since: z.string(),
  next: z.string().nullable(),
  delta: z.string().nullable(),
})
const mailCursor = z.object({
  v: z.literal(1),
  folder: z.enum(['inbox', 'sentitems']),
  next: z.string().nullable(),
  deltas: z.object({ inbox: z.string().nullable(), sentitems: z.string().nullable() }),
})

export const o365Connector: Connector<O365Config> = {
  id: 'o365',
  name: 'Microsoft 365',
  version: '1.0.0',
  authMethod: 'msal',
  dataTypes: ['activity'],
  configSchema: o365ConfigSchema,
  secretConfigKeys: ['clientSecret'],
  credentialsHelp:
    'In Entra ID, open the app registration: check its tenant and client IDs, add a client secret under Certificates & secrets and paste its Value, and grant admin consent under API permissions.',
  streams: STREAMS,
  // Ids carry the mailbox and the kind: `<mailbox>:event:<id>` and `<mailbox>:message:<id>`.
  idsUniqueAcrossStreams: true,
  signIn: o365SignIn,
  requiredAgreement: {
    id: 'dpa',
    name: 'Microsoft 365 data-processing terms',
    acceptCommand: 'gtm-agent o365 accept-dpa --tenant <tenant>',
  },

  async authenticate(config, options) {
    await checkAppOnly(config, options)
    return { credentials: { ...config } }
  },

  async listPartitions(credentials, _stream, options) {
    const config = o365ConfigSchema.parse(credentials)
    if (config.mailboxes) return config.mailboxes.map((m) => m.toLowerCase())
    const mailboxes: string[] = []
    let url: string | undefined = '/users?$select=id,userPrincipalName,mail&$top=999'
    while (url) {
      const page: GraphPage = await graphGet(config, url, options ?? {})
      for (const user of page.value) {
        if (typeof user['mail'] === 'string' && typeof user['userPrincipalName'] === 'string') {
          mailboxes.push(user['userPrincipalName'].toLowerCase())
        }
      }
      url = page['@odata.nextLink']
    }
    return mailboxes
  },

  async sync(credentials, cursor, options = {}) {
    const config = o365ConfigSchema.parse(credentials)
    const mailbox = options.partition
    if (!mailbox)
      throw new AppError('internal', 'A Microsoft 365 stream is read one mailbox at a time.')
    const allowed = new Set(config.allowedExternalDomains.map((d) => d.toLowerCase()))
    if (options.stream === 'calendar')
      return calendarPage(config, mailbox, cursor, allowed, options)
    if (options.stream === 'mail') return mailPage(config, mailbox, cursor, allowed, options)
    throw new AppError('internal', `Microsoft 365 has no stream "${options.stream ?? ''}".`)
  },

  getSchema(entityType) {
    return entityType === 'activity'
      ? (STREAMS[0]?.defaultMappings ?? []).map((m) => ({ ...m }))
      : []
  },

  listSourceFields(_credentials, stream) {
    const found = STREAMS.find((s) => s.id === stream)
    return Promise.resolve(
      (found?.defaultMappings ?? [])
        .filter((m) => !['kind', 'channel'].includes(m.sourceField))
        .map((m) => ({ path: m.sourceField, label: m.sourceField, type: 'string' })),
    )
  },

  async healthCheck(credentials, options) {
    let tokenExpiresAt: Date | null = null
    const status = await probeHealth(async () => {
      tokenExpiresAt = (await checkAppOnly(o365ConfigSchema.parse(credentials), options))
        .tokenExpiresAt
    }, 'Microsoft 365 granted the app its permissions.')
    // When the app-only token the check was given runs out (MSAL renews it before then).
    return tokenExpiresAt ? { ...status, details: { ...status.details, tokenExpiresAt } } : status
  },
}

/**
 * One Graph page of a mailbox, starting over from `initial` when its delta token expired; a user
 * without a mailbox is reported (log) and read as empty.
 */
async function read(
  config: O365Config,
  url: string,
  initial: string,
  mailbox: string,
  options: SyncOptions & CredentialOptions,
): Promise<GraphPage | 'no-mailbox'> {
  try {
    return await graphGet(config, url, options)
  } catch (err) {
    if (err instanceof NoMailbox) {
      options.log?.warn({ mailbox }, `${VENDOR}: ${mailbox} has no mailbox; skipped`)
      return 'no-mailbox'
    }
    if (err instanceof DeltaExpired && url !== initial) {
      options.log?.warn(
        { mailbox },
        `${VENDOR}: the change token of ${mailbox} expired; reading it again`,
      )
      return graphGet(config, initial, options)
    }
    throw err
  }
}

async function calendarPage(
  config: O365Config,
  mailbox: string,
  cursor: string | null,
  allowed: ReadonlySet<string>,
  options: SyncOptions,
): Promise<SyncResult> {
  let at = readJsonCursor(calendarCursor, cursor, () =>
    options.log?.warn(
      { mailbox },
      'a stored calendar cursor is not one this connector wrote; reading it again',
    ),
  )
  const now = Date.now()
  if (!at || (at.next === null && now - Date.parse(at.since) > CALENDAR_RENEW_MS)) {
    // A first walk, or a window grown stale: the last and next 30 days from now.
    at = { v: 1, since: new Date(now).toISOString(), next: null, delta: null }
  }
  const since = Date.parse(at.since)
  const initial =
    `/users/${encodeURIComponent(mailbox)}/calendarView/delta` +
    `?startDateTime=${new Date(since - CALENDAR_DAYS * DAY_MS).toISOString()}` +
    `&endDateTime=${new Date(since + CALENDAR_DAYS * DAY_MS).toISOString()}`
  const result = await read(config, at.next ?? at.delta ?? initial, initial, mailbox, options)
  if (result === 'no-mailbox') return jsonCursorPage([], at, false)
  const records = result.value.flatMap((item) => eventRecord(mailbox, item, allowed) ?? [])
  const nextLink = result['@odata.nextLink']
  if (nextLink) return jsonCursorPage(records, { ...at, next: nextLink }, true)
  return jsonCursorPage(
    records,
    { ...at, next: null, delta: result['@odata.deltaLink'] ?? at.delta },
    false,
  )
}

async function mailPage(
  config: O365Config,
  mailbox: string,
  cursor: string | null,
  allowed: ReadonlySet<string>,
  options: SyncOptions,
): Promise<SyncResult> {
  const at = readJsonCursor(mailCursor, cursor, () =>
    options.log?.warn(
      { mailbox },
      'a stored mail cursor is not one this connector wrote; reading it again',
    ),
  ) ?? {
    v: 1 as const,
    folder: 'inbox' as MailFolder,
    next: null,
    deltas: { inbox: null, sentitems: null },
  }
  const folder = at.folder
  const initial =
    `/users/${encodeURIComponent(mailbox)}/mailFolders/${folder}/messages/delta` +
    `?$select=${MESSAGE_FIELDS.join(',')}` +
    // Graph's message delta filters on receivedDateTime only; sent items carry one too.
    `&$filter=receivedDateTime ge ${new Date(Date.now() - MAIL_DAYS * DAY_MS).toISOString()}`
  const result = await read(
    config,
    at.next ?? at.deltas[folder] ?? initial,
    initial,
    mailbox,
    options,
  )
  if (result === 'no-mailbox')
    return jsonCursorPage([], { ...at, folder: 'inbox', next: null }, false)
  const records = result.value.flatMap(
    (item) => messageRecord(mailbox, folder, item, allowed) ?? [],
  )
  const nextLink = result['@odata.nextLink']
  if (nextLink) return jsonCursorPage(records, { ...at, next: nextLink }, true)
  const deltas = { ...at.deltas, [folder]: result['@odata.deltaLink'] ?? at.deltas[folder] }
  // Inbox done: sent items next, in the same run. Both done: the mailbox is read.
  if (folder === 'inbox')
    return jsonCursorPage(records, { v: 1, folder: 'sentitems', next: null, deltas }, true)
  return jsonCursorPage(records, { v: 1, folder: 'inbox', next: null, deltas }, false)
}

if (!connectorRegistry.has(o365Connector.id)) connectorRegistry.register(o365Connector)
