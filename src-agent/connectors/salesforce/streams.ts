/**
 * Salesforce's streams: one per object read, in the order a sync reads them (accounts first,
 * so people and activities find them). Their ids are a contract: cursors, runs and mappings are
 * stored under them.
 */
import { AppError } from '../../../shared/errors.js'
import type { StreamDefinition } from '../interface.js'
import { SYNC_OBJECTS, splitLegacyCursor, type SyncObject } from './cursor.js'
import { OBJECT_ENTITY } from './map.js'

const STREAM_OF: Record<SyncObject, { id: string; name: string }> = {
  Account: { id: 'accounts', name: 'Accounts' },
  Contact: { id: 'contacts', name: 'Contacts' },
  Lead: { id: 'leads', name: 'Leads' },
  Opportunity: { id: 'opportunities', name: 'Opportunities' },
  Task: { id: 'tasks', name: 'Tasks' },
  Event: { id: 'events', name: 'Events' },
}

export const SALESFORCE_STREAMS: readonly StreamDefinition[] = SYNC_OBJECTS.map((object) => ({
  ...STREAM_OF[object],
  entityType: OBJECT_ENTITY[object],
}))

/** The object a stream reads; an unknown stream names the ones that exist. */
export function streamObject(stream: string | undefined): SyncObject {
  const object = SYNC_OBJECTS.find((o) => STREAM_OF[o].id === stream)
  if (object) return object
  throw new AppError(
    'config_invalid',
    `Salesforce has no stream "${stream ?? ''}". Its streams: ${SYNC_OBJECTS.map((o) => STREAM_OF[o].id).join(', ')}.`,
  )
}

/** The one cursor of a connection synced before streams, split per stream (see cursor.ts). */
export function upgradeCursor(legacy: string): Record<string, string | null> {
  const split = splitLegacyCursor(legacy)
  return Object.fromEntries(
    SYNC_OBJECTS.map((object) => [STREAM_OF[object].id, split[object] ?? null]),
  )
}
