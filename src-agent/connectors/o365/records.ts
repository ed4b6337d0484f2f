/**
 * Graph items as activities, metadata only. One activity per item per mailbox
 * (`<mailbox>:event:<id>`, `<mailbox>:message:<id>`). Only participants on the allowlisted external
 * domains count: an item with none produces nothing. Event bodies, which Graph's event delta
 * returns whatever `$select` says, never get past this file; messages are read with `$select`.
 */
import type { SourceRecord } from '../../../shared/schemas.js'

/** What message delta asks for: metadata, never `body`, `bodyPreview` or `uniqueBody`. */
export const MESSAGE_FIELDS = [
  'id',
  'subject',
  'from',
  'toRecipients',
  'ccRecipients',
  'receivedDateTime',
  'sentDateTime',
  'conversationId',
  'internetMessageId',
  'hasAttachments',
  'parentFolderId',
  'lastModifiedDateTime',
] as const

export type MailFolder = 'inbox' | 'sentitems'

/** The domain of an address, lower-cased; undefined when it is not an address. */
function domainOf(email: string): string | undefined {
  const at = email.lastIndexOf('@')
  return at > 0 && at < email.length - 1 ? email.slice(at + 1).toLowerCase() : undefined
}

function addressOf(value: unknown): string | undefined {
  const address = (value as { emailAddress?: { address?: unknown } } | null)?.emailAddress?.address
  return typeof address === 'string' && address.includes('@')
    ? address.trim().toLowerCase()
    : undefined
}

/** The participants on allowlisted domains (exact, case-insensitive), in order, once each. */
export function allowlisted(
  addresses: Array<string | undefined>,
  allowed: ReadonlySet<string>,
): string[] {
  const found: string[] = []
  for (const address of addresses) {
    if (!address) continue
    const domain = domainOf(address)
    if (domain && allowed.has(domain) && !found.includes(address)) found.push(address)
  }
  return found
}

/**
 * A Graph dateTimeTimeZone as an instant. The connector asks for UTC (Prefer outlook.timezone),
 * so `dateTime` has no offset and is read as UTC, whatever the agent's own zone. Anything else is
 * passed on as it is, for the quality step to refuse.
 */
export function utc(value: unknown): unknown {
  const v = value as { dateTime?: unknown; timeZone?: unknown } | null
  if (!v || typeof v.dateTime !== 'string') return value
  if (v.timeZone !== undefined && v.timeZone !== 'UTC') return value
  const text = /[zZ]|[+-]\d\d:\d\d$/.test(v.dateTime) ? v.dateTime : `${v.dateTime}Z`
  const t = Date.parse(text)
  return Number.isNaN(t) ? value : new Date(t).toISOString()
}

function removed(item: Record<string, unknown>): boolean {
  return typeof item['@removed'] === 'object' && item['@removed'] !== null
}

/** A calendar delta item as an activity, or nothing. */
export function eventRecord(
  mailbox: string,
  item: Record<string, unknown>,
  allowed: ReadonlySet<string>,
): SourceRecord | undefined {
  const activityId = `${mailbox}:event:${String(item['id'])}`
  if (removed(item)) return { entityType: 'activity', deleted: true, data: { activityId } }
  const attendees = Array.isArray(item['attendees']) ? (item['attendees'] as unknown[]) : []
  const organizer = addressOf(item['organizer'])
  const external = allowlisted([organizer, ...attendees.map(addressOf)], allowed)
  if (external.length === 0) return undefined
  return {
    entityType: 'activity',
    data: {
      activityId,
      kind: 'meeting',
      channel: 'meetings',
      occurredAt: utc(item['start']),
      endsAt: utc(item['end']),
      personEmail: external[0],
      externalParticipants: external,
      attendeeCount: attendees.length,
      organizer: organizer ?? null,
      subject: typeof item['subject'] === 'string' ? item['subject'] : null,
      isCancelled: item['isCancelled'] === true,
      iCalUId: typeof item['iCalUId'] === 'string' ? item['iCalUId'] : null,
      mailbox,
    },
    ...(typeof item['lastModifiedDateTime'] === 'string'
      ? { modifiedAt: item['lastModifiedDateTime'] }
      : {}),
  }
}

/** A message delta item of one folder as an activity, or nothing. */
export function messageRecord(
  mailbox: string,
  folder: MailFolder,
  item: Record<string, unknown>,
  allowed: ReadonlySet<string>,
): SourceRecord | undefined {
  const activityId = `${mailbox}:message:${String(item['id'])}`
  if (removed(item)) return { entityType: 'activity', deleted: true, data: { activityId } }
  const recipients = ['toRecipients', 'ccRecipients'].flatMap((key) =>
    Array.isArray(item[key]) ? (item[key] as unknown[]).map(addressOf) : [],
  )
  // Received: the sender is the counterpart. Sent: the recipients are.
  const external = allowlisted(folder === 'inbox' ? [addressOf(item['from'])] : recipients, allowed)
  if (external.length === 0) return undefined
  return {
    entityType: 'activity',
    data: {
      activityId,
      kind: folder === 'inbox' ? 'email_received' : 'email_sent',
      channel: 'email',
      occurredAt: folder === 'inbox' ? item['receivedDateTime'] : item['sentDateTime'],
      personEmail: external[0],
      externalParticipants: external,
      subject: typeof item['subject'] === 'string' ? item['subject'] : null,
      conversationId: typeof item['conversationId'] === 'string' ? item['conversationId'] : null,
      hasAttachments: item['hasAttachments'] === true,
      mailbox,
    },
    ...(typeof item['lastModifiedDateTime'] === 'string'
      ? { modifiedAt: item['lastModifiedDateTime'] }
      : {}),
  }
}
