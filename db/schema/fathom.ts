import { bigint, index, jsonb, pgTable, text, timestamp, unique, uuid } from 'drizzle-orm/pg-core'
import { tenants } from './tenants.js'

/**
 * Fathom meetings with their content: what the `meeting_recorded` activity points to, kept
 * whole (invitees, transcript, summary, action items), one row per recording per tenant.
 */
export const fathomMeetings = pgTable(
  'fathom_meetings',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tenantId: text('tenant_id')
      .notNull()
      .references(() => tenants.id, { onDelete: 'cascade' }),
    recordingId: bigint('recording_id', { mode: 'number' }).notNull(),
    title: text('title'),
    url: text('url'),
    shareUrl: text('share_url'),
    startedAt: timestamp('started_at', { withTimezone: true }),
    endedAt: timestamp('ended_at', { withTimezone: true }),
    /** calendar_invitees as Fathom sends them: name, email, email_domain, is_external. */
    invitees: jsonb('invitees').$type<unknown[]>().notNull().default([]),
    recordedBy: jsonb('recorded_by').$type<Record<string, unknown> | null>(),
    /** [{ speaker, text, timestamp }], null until Fathom has it. */
    transcript: jsonb('transcript').$type<unknown[] | null>(),
    /** default_summary.markdown_formatted. */
    summary: text('summary'),
    actionItems: jsonb('action_items').$type<unknown[] | null>(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    unique('fathom_meetings_tenant_recording_key').on(t.tenantId, t.recordingId),
    index('fathom_meetings_tenant_started_idx').on(t.tenantId, t.startedAt),
  ],
)
