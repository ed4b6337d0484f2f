import { create } from 'zustand'
import type { IpcEvent, IpcOutput } from '../../shared/ipc.js'
import { call, messageOf, onEvent } from '../lib/gtm.js'

type Progress = IpcEvent<'sync:progress'>
type Summary = IpcOutput<'sync:run'>

export interface StreamProgress {
  stream: string
  phase: string
  pages: number
  records: number
  errors: number
  /** How many records the stream holds in all, when the source said. */
  expected: number | null
  /** When this stream began (ms since epoch, the app's clock). */
  startedAt: number
  /** When its last page landed. */
  updatedAt: number
  done: boolean
}

export interface LiveSync {
  tenantId: string
  connectorType: string
  startedAt: number
  state: 'running' | 'cancelling' | 'succeeded' | 'failed' | 'paused' | 'cancelled'
  phase: string
  streams: StreamProgress[]
  records: number
  errors: number
  error: string | null
  finishedAt: number | null
  summary: Summary | null
}

export const liveKey = (tenantId: string, connectorType: string): string =>
  `${tenantId}\u0000${connectorType}`

const recordsOf = (c: { created: number; updated: number; deleted: number }): number =>
  c.created + c.updated + c.deleted

type SyncState = {
  live: Record<string, LiveSync>
  /** Follows sync:progress events; returns what stops following. */
  listen: () => () => void
  start: (input: {
    tenantId: string
    connectorType: string
    stream?: string
    full?: boolean
  }) => Promise<Summary | null>
  cancel: (tenantId: string, connectorType: string) => Promise<void>
}

/** Syncs started from this app, with their progress as the agent reports it page by page. */
export const useSyncStore = create<SyncState>()((set, get) => {
  const update = (key: string, fn: (sync: LiveSync) => LiveSync): void => {
    const sync = get().live[key]
    if (sync) set({ live: { ...get().live, [key]: fn(sync) } })
  }

  const apply = (event: Progress): void => {
    const key = liveKey(event.tenantId, event.connectorType)
    const now = Date.now()
    update(key, (sync) => {
      // The sync's summary has the last word: a report arriving after it changes nothing.
      if (sync.finishedAt !== null) return sync
      const streams = sync.streams.map((s) => ({ ...s }))
      if (event.stream !== null) {
        const index = streams.findIndex((s) => s.stream === event.stream)
        const previous = streams[index]
        const next: StreamProgress = {
          stream: event.stream,
          phase: event.phase,
          pages: event.pages,
          records: recordsOf(event),
          errors: event.errors,
          expected: event.expected ?? previous?.expected ?? null,
          startedAt: previous?.startedAt ?? lastActivity(sync),
          updatedAt: now,
          // A stream's last pages may commit after the next one started: done stays done.
          done: previous?.done === true || event.phase === 'complete' || event.phase === 'failed',
        }
        if (index === -1) {
          // A new stream: the ones before it are done.
          for (const s of streams) s.done = true
          streams.push(next)
        } else streams[index] = next
      }
      return {
        ...sync,
        phase: event.phase,
        streams,
        records: recordsOf(event.totals),
        errors: event.totals.errors,
      }
    })
  }

  return {
    live: {},
    listen: () => onEvent('sync:progress', apply),
    start: async ({ tenantId, connectorType, stream, full }) => {
      const key = liveKey(tenantId, connectorType)
      const running = get().live[key]
      if (running && (running.state === 'running' || running.state === 'cancelling')) return null
      set({
        live: {
          ...get().live,
          [key]: {
            tenantId,
            connectorType,
            startedAt: Date.now(),
            state: 'running',
            phase: 'starting',
            streams: [],
            records: 0,
            errors: 0,
            error: null,
            finishedAt: null,
            summary: null,
          },
        },
      })
      try {
        const summary = await call('sync:run', {
          tenantId,
          connectorType,
          ...(stream ? { stream } : {}),
          ...(full ? { full: true } : {}),
        })
        update(key, (sync) => ({
          ...sync,
          state:
            sync.state === 'cancelling'
              ? 'cancelled'
              : summary.status === 'succeeded'
                ? 'succeeded'
                : summary.status === 'paused'
                  ? 'paused'
                  : 'failed',
          phase: 'complete',
          streams: sync.streams.map((s) => ({ ...s, done: true })),
          records: recordsOf(summary),
          errors: summary.errors,
          error: summary.error,
          finishedAt: Date.now(),
          summary,
        }))
        return summary
      } catch (err) {
        update(key, (sync) => ({
          ...sync,
          state: 'failed',
          error: messageOf(err),
          finishedAt: Date.now(),
        }))
        return null
      }
    },
    cancel: async (tenantId, connectorType) => {
      update(liveKey(tenantId, connectorType), (sync) => ({ ...sync, state: 'cancelling' }))
      await call('sync:cancel', { tenantId, connectorType })
    },
  }
})

function lastActivity(sync: LiveSync): number {
  return sync.streams.reduce((latest, s) => Math.max(latest, s.updatedAt), sync.startedAt)
}

/** Records per second of a stream so far. */
export function streamRate(stream: StreamProgress, now: number): number {
  const seconds = Math.max((now - stream.startedAt) / 1000, 0.001)
  return stream.records / seconds
}

/** Seconds left for a stream whose total is known, at its rate so far; null when unknown. */
export function streamEta(stream: StreamProgress, now: number): number | null {
  if (stream.expected === null || stream.done) return null
  const rate = streamRate(stream, now)
  if (rate <= 0) return null
  return Math.max(stream.expected - stream.records, 0) / rate
}
