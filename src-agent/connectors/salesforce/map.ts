/**
 * Salesforce records to source records. Contacts and Leads are people, Accounts accounts, and
 * Opportunities, Tasks and Events activities. Each record is pre-shaped with a few computed
 * keys (lower camelCase, so they never collide with Salesforce's PascalCase fields) so that one
 * default mapping per entity type fits every object of that type; the raw fields stay as they
 * are, so an admin can remap any of them.
 */
import { isCalendarDay } from '../../../shared/dates.js'
import type { EntityType, FieldMapping, SourceRecord } from '../../../shared/schemas.js'
import type { SyncObject } from './cursor.js'

export const OBJECT_ENTITY: Record<SyncObject, EntityType> = {
  Account: 'account',
  Contact: 'person',
  Lead: 'person',
  Opportunity: 'activity',
  Task: 'activity',
  Event: 'activity',
}

const m = (
  sourceField: string,
  targetField: string,
  transform: FieldMapping['transform'] = 'none',
  required?: boolean,
): FieldMapping => ({ sourceField, targetField, transform, ...(required ? { required } : {}) })

const DEFAULT_MAPPINGS: Record<EntityType, FieldMapping[]> = {
  person: [
    m('Id', 'externalId'),
    m('Email', 'email', 'trim'),
    m('FirstName', 'firstName', 'trim'),
    m('LastName', 'lastName', 'trim'),
    m('Title', 'title', 'trim'),
    m('Phone', 'phone', 'trim'),
    m('accountExternalId', 'accountExternalId'),
  ],
  account: [
    m('Id', 'externalId'),
    m('Name', 'name', 'trim', true),
    m('Website', 'domain', 'lowercase'),
    m('Industry', 'industry'),
    m('NumberOfEmployees', 'employeeCount'),
    m('AnnualRevenue', 'annualRevenue'),
  ],
  activity: [
    m('Id', 'externalId'),
    m('type', 'type'),
    m('channel', 'channel'),
    m('occurredAt', 'occurredAt'),
    m('personExternalId', 'personExternalId'),
    m('accountExternalId', 'accountExternalId'),
    m('Subject', 'properties.subject', 'trim'),
    m('Status', 'properties.status'),
    m('StageName', 'properties.stage'),
    m('Amount', 'properties.amount'),
    m('CloseDate', 'properties.closeDate'),
    m('IsClosed', 'properties.isClosed'),
    m('IsWon', 'properties.isWon'),
    m('AccountId', 'properties.accountExternalId'),
  ],
}

/** The default mappings of one entity type (fresh copies). */
export function defaultMappings(entityType: EntityType): FieldMapping[] {
  return DEFAULT_MAPPINGS[entityType].map((mapping) => ({ ...mapping }))
}

/**
 * One REST-shaped Salesforce record as a source record: `attributes` dropped, `objectType` and
 * the computed keys added, deleted when IsDeleted (queryAll), modifiedAt from SystemModstamp.
 */
export function toSourceRecord(object: SyncObject, raw: Record<string, unknown>): SourceRecord {
  // One copy of the fields (every record of a sync passes here), the computed keys set on it.
  const data: Record<string, unknown> = {}
  for (const key in raw) if (key !== 'attributes') data[key] = raw[key]
  return sourceRecordOf(object, data)
}

/**
 * A record's fields as a source record: `data` becomes the record's data, with `objectType` and
 * the computed keys set on it. A Bulk result row is passed as it is (the page's own, made by
 * recordReader, with no `attributes`); toSourceRecord passes its copy of a REST record.
 */
export function sourceRecordOf(object: SyncObject, data: Record<string, unknown>): SourceRecord {
  data.objectType = object
  addComputed(object, data)
  const modifiedAt = isoDate(data.SystemModstamp)
  return {
    entityType: OBJECT_ENTITY[object],
    data,
    ...(modifiedAt ? { modifiedAt } : {}),
    ...(data.IsDeleted === true ? { deleted: true } : {}),
  }
}

/** The channel of a Task: its subtype (Email, ListEmail, Call) or else its Type picklist. */
export function taskChannel(subtype: unknown, type: unknown): string | undefined {
  if (subtype === 'Email' || subtype === 'ListEmail') return 'email'
  if (subtype === 'Call') return 'call'
  return channelOfType(type)
}

/** The channel of an Event: from its Type picklist; a meeting unless it says otherwise. */
export function eventChannel(type: unknown): string {
  return channelOfType(type) ?? 'meeting'
}

/** Adds the keys mapping reads that Salesforce does not name that way; absent values are left out. */
function addComputed(object: SyncObject, f: Record<string, unknown>): void {
  switch (object) {
    case 'Account':
      return
    case 'Contact':
      return set(f, 'accountExternalId', f.AccountId)
    case 'Lead':
      return set(f, 'accountExternalId', f.ConvertedAccountId)
    case 'Opportunity':
      f.type = 'opportunity'
      set(f, 'occurredAt', isoDate(f.CreatedDate))
      return set(f, 'accountExternalId', f.AccountId)
    case 'Task':
      f.type = 'task'
      set(f, 'channel', taskChannel(f.TaskSubtype, f.Type))
      set(f, 'occurredAt', isoDate(f.CompletedDateTime ?? f.ActivityDate ?? f.CreatedDate))
      set(f, 'personExternalId', f.WhoId)
      return set(f, 'accountExternalId', f.AccountId)
    case 'Event':
      f.type = 'event'
      set(f, 'channel', eventChannel(f.Type))
      set(f, 'occurredAt', isoDate(f.StartDateTime ?? f.ActivityDateTime ?? f.CreatedDate))
      set(f, 'personExternalId', f.WhoId)
      return set(f, 'accountExternalId', f.AccountId)
  }
}

function channelOfType(type: unknown): string | undefined {
  if (type === 'Email') return 'email'
  if (type === 'Call') return 'call'
  if (type === 'Meeting') return 'meeting'
  return undefined
}

/**
 * Salesforce datetimes (`…+0000`, Bulk's `…Z`) and dates as ISO-8601 UTC; undefined when the
 * text is no date, a day its month does not have included (Date.parse reads 2025-02-30 as
 * March 2).
 */
function isoDate(value: unknown): string | undefined {
  if (typeof value !== 'string' || value === '') return undefined
  // Already ISO-8601 UTC to the millisecond (every Bulk datetime): kept as it is, when valid.
  if (ISO_UTC.test(value)) return isCalendarDay(value) ? value : undefined
  const ms = Date.parse(value)
  return Number.isNaN(ms) || !isCalendarDay(value) ? undefined : new Date(ms).toISOString()
}

/** `2025-03-01T17:01:30.000Z` with an hour, minute and second in range (Date.parse reads 24:00). */
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}Z$/

function set(target: Record<string, unknown>, key: string, value: unknown): void {
  if (value !== undefined && value !== null) target[key] = value
}
