/**
 * A Fathom meeting as GTM Clarity keeps it: one `meeting_recorded` activity (mapped from the
 * fields added here) and one fathom_meetings row with its content, for sync pages and webhook
 * deliveries alike.
 */
import { sql } from 'drizzle-orm'
import { fathomMeetings } from '../../../db/schema/index.js'
import type { SourceRecord } from '../../../shared/schemas.js'
import type { SideTableCapability } from '../interface.js'

/** The activity's external id: `fathom_<recording_id>`. */
export function meetingActivityId(item: Record<string, unknown>): string | undefined {
  const id = item['recording_id']
  return typeof id === 'number' && Number.isSafeInteger(id) ? `fathom_${id}` : undefined
}

/** A meeting item as a source record, with the derived fields the default mappings read. */
export function meetingRecord(item: Record<string, unknown>): SourceRecord {
  const invitees = Array.isArray(item['calendar_invitees'])
    ? (item['calendar_invitees'] as Array<Record<string, unknown>>)
    : []
  const external = invitees.find(
    (i) => i?.['is_external'] === true && typeof i['email'] === 'string',
  )
  const start = time(item['recording_start_time'])
  const end = time(item['recording_end_time'])
  const activityId = meetingActivityId(item)
  return {
    entityType: 'activity',
    data: {
      ...item,
      ...(activityId ? { activityId } : {}),
      kind: 'meeting_recorded',
      channel: 'video',
      startedAt: item['recording_start_time'] ?? item['scheduled_start_time'] ?? item['created_at'],
      ...(external ? { externalInviteeEmail: external['email'] } : {}),
      participantCount: invitees.length,
      ...(start !== undefined && end !== undefined && end >= start
        ? { durationSeconds: Math.round((end - start) / 1000) }
        : {}),
      displayTitle: item['title'] ?? item['meeting_title'] ?? null,
    },
    ...(typeof item['created_at'] === 'string' ? { modifiedAt: item['created_at'] } : {}),
  }
}

/** Each accepted meeting's content in fathom_meetings, replaced when Fathom sends it again. */
export const fathomSideTables: SideTableCapability = {
  async persist(tx, { tenantId, records, accepted }) {
    const rows = records
      .map((r) => r.data)
      .filter((item) => {
        const id = meetingActivityId(item)
        return id !== undefined && accepted.has(id)
      })
      .map((item) => ({
        tenantId,
        recordingId: item['recording_id'] as number,
        title: text(item['title'] ?? item['meeting_title']),
        url: text(item['url']),
        shareUrl: text(item['share_url']),
        startedAt: date(item['recording_start_time'] ?? item['scheduled_start_time']),
        endedAt: date(item['recording_end_time'] ?? item['scheduled_end_time']),
        invitees: Array.isArray(item['calendar_invitees'])
          ? (item['calendar_invitees'] as unknown[])
          : [],
        recordedBy: isObject(item['recorded_by']) ? item['recorded_by'] : null,
        transcript: Array.isArray(item['transcript']) ? (item['transcript'] as unknown[]) : null,
        summary: isObject(item['default_summary'])
          ? text(item['default_summary']['markdown_formatted'])
          : null,
        actionItems: Array.isArray(item['action_items'])
          ? (item['action_items'] as unknown[])
          : null,
      }))
    if (rows.length === 0) return
    await tx
      .insert(fathomMeetings)
      .values(rows)
      .onConflictDoUpdate({
        target: [fathomMeetings.tenantId, fathomMeetings.recordingId],
        set: {
          title: sql`excluded.title`,
          url: sql`excluded.url`,
          shareUrl: sql`excluded.share_url`,
          startedAt: sql`excluded.started_at`,
          endedAt: sql`excluded.ended_at`,
          invitees: sql`excluded.invitees`,
          recordedBy: sql`excluded.recorded_by`,
          // Content that arrives later (a webhook after the sync) fills in, never blanks out.
          transcript: sql`coalesce(excluded.transcript, ${fathomMeetings.transcript})`,
          summary: sql`coalesce(excluded.summary, ${fathomMeetings.summary})`,
          actionItems: sql`coalesce(excluded.action_items, ${fathomMeetings.actionItems})`,
          updatedAt: sql`now()`,
        },
      })
  },
}

function time(value: unknown): number | undefined {
  if (typeof value !== 'string') return undefined
  const t = Date.parse(value)
  return Number.isNaN(t) ? undefined : t
}

function date(value: unknown): Date | null {
  const t = time(value)
  return t === undefined ? null : new Date(t)
}

function text(value: unknown): string | null {
  return typeof value === 'string' ? value : null
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
