import { describe, expect, it } from 'vitest'
import { connectionStatus } from '../../src-agent/cli/status.js'
import type { ConnectionOverview } from '../../src-agent/services/operations.js'
import type { TemporalStatus } from '../../src-agent/temporal/ops.js'
import type { ScheduleView } from '../../src-agent/temporal/scheduler.js'

const NOW = new Date('2026-12-03T12:00:00Z')
const RECONCILE_SECONDS = 60

const connection = (connectedSecondsAgo: number): ConnectionOverview => ({
  tenantId: 'acme',
  connectorType: 'salesforce',
  status: 'connected',
  needsReauth: false,
  lastSyncAt: null,
  createdAt: new Date(NOW.getTime() - connectedSecondsAgo * 1000),
  lastRun: null,
  writebacks: { pending: 0, failed: 0, oldestDueAt: null },
  webhooks: { pending: 0, failed: 0, oldestPendingAt: null },
})

const temporal = (schedules: TemporalStatus['schedules'] = new Map()): TemporalStatus => ({
  reachable: true,
  address: '127.0.0.1:7233',
  namespace: 'default',
  taskQueue: 'gtm-connect',
  workers: 1,
  schedules,
  error: null,
})

describe("gtm-agent status, a connection's schedule", () => {
  it('is on its way while the next reconcile passes can still give it one', () => {
    for (const age of [0, 60, 2 * RECONCILE_SECONDS]) {
      const status = connectionStatus(connection(age), temporal(), NOW, RECONCILE_SECONDS)
      expect(status.attention, `connected ${age} s ago`).toEqual([])
      expect(status.schedule).toBeNull()
      expect(status.scheduleState).toBe('awaiting')
    }
  })

  it('needs attention once two passes have gone by, saying for how long', () => {
    const status = connectionStatus(connection(3_600), temporal(), NOW, RECONCILE_SECONDS)
    expect(status.attention).toEqual([
      'has no sync schedule in Temporal, 1 h after it was connected: is a worker running its reconcile pass?',
    ])
    expect(status.scheduleState).toBe('missing')
    // A slower pass gives a new connection more time.
    expect(connectionStatus(connection(3_600), temporal(), NOW, 3_600).attention).toEqual([])
  })

  it('is not flagged when the connection is disconnected or Temporal could not be asked', () => {
    const old = connection(3_600)
    const disconnected = connectionStatus(
      { ...old, status: 'disconnected' },
      temporal(),
      NOW,
      RECONCILE_SECONDS,
    )
    expect([disconnected.attention, disconnected.scheduleState]).toEqual([[], 'none'])
    const unasked = connectionStatus(
      old,
      { ...temporal(), reachable: false },
      NOW,
      RECONCILE_SECONDS,
    )
    expect([unasked.attention, unasked.scheduleState]).toEqual([[], 'unknown'])
  })

  it('is scheduled or paused once Temporal holds its schedule', () => {
    const view = (paused: boolean): ScheduleView => ({
      tenantId: 'acme',
      connectorType: 'salesforce',
      scheduleId: 'gtm-sync:acme:salesforce',
      cron: '*/15 * * * *',
      paused,
      note: null,
      nextRunAt: new Date('2026-12-03T12:15:00Z'),
      lastRunAt: null,
      running: false,
    })
    for (const paused of [false, true]) {
      // Connected 10 min ago, within its 15-minute interval: not behind.
      const status = connectionStatus(
        connection(600),
        temporal(new Map([['acme:salesforce', view(paused)]])),
        NOW,
        RECONCILE_SECONDS,
      )
      expect(status.attention).toEqual([])
      expect(status.scheduleState).toBe(paused ? 'paused' : 'scheduled')
      expect(status.schedule).toMatchObject({ paused, nextRunAt: '2026-12-03T12:15:00.000Z' })
    }
  })
})
