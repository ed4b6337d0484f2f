import { createHash, randomBytes } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'

/**
 * A loopback Salesforce: OAuth 2.0 web-server flow with PKCE and refresh-token rotation, REST
 * query/queryAll with locator paging, describe, deleted, limits, Bulk API 2.0 query jobs and
 * sObject Collections updates, as documented in shared/vendor-apis.md §1, so jsforce v3 talks to
 * it unchanged. Records are generated from their index on the fly (one million Contacts cost no
 * memory); changes live in per-object override maps.
 */
export type SObjectType = 'Account' | 'Contact' | 'Lead' | 'Opportunity' | 'Task' | 'Event'
export const SOBJECT_TYPES: readonly SObjectType[] = [
  'Account',
  'Contact',
  'Lead',
  'Opportunity',
  'Task',
  'Event',
]

export interface SalesforceFakeOptions {
  /** Records generated per object (defaults: a small org, see DEFAULT_COUNTS). */
  counts?: Partial<Record<SObjectType, number>>
  clientId?: string
  /** When set, the token endpoint requires this client_secret. */
  clientSecret?: string
  /** Issue a new refresh token on every refresh and invalidate the old one. */
  rotateRefreshTokens?: boolean
  /** Daily API request allowance and the usage the day starts with. */
  dailyApiMax?: number
  apiUsage?: number
  /** The server's own cap on a query batch, below what `batchSize` asks for (wide queries). */
  maxBatchSize?: number
  /** Rows per Bulk results page when the client sends no `maxRecords`. */
  bulkPageSize?: number
  /** Job status polls before a Bulk job reaches JobComplete (UploadComplete → InProgress → …). */
  bulkPollsToComplete?: number
  /**
   * Wall-clock time a Bulk job works before it can reach JobComplete (default 0): Salesforce
   * takes a while over a job however often it is polled.
   */
  bulkJobMs?: number
  /** Objects Bulk API 2.0 refuses ("not supported by the Bulk API"). */
  bulkUnsupported?: SObjectType[]
  /** Extra custom text fields per object (`Extra_Field_001__c` …), for very wide describes. */
  extraFields?: Partial<Record<SObjectType, number>>
  /** Longest request URL accepted; longer ones get 414 like Salesforce's front end. */
  maxUrlLength?: number
  /**
   * The connected app's callback URLs. When set, an authorize request whose redirect_uri is not
   * exactly one of them is refused with an error page, as Salesforce does.
   */
  callbackUrls?: string[]
  /** Delay before answering the token endpoint, to widen refresh races. */
  tokenDelayMs?: number
  /** Delay before answering a query or a query's next page: a slow org, so a sync takes a while. */
  queryDelayMs?: number
  /**
   * The first N sObject Collections updates are never answered (their connection stays open until
   * the fake closes): a writer that dies while it waits.
   */
  holdCollections?: number
  /**
   * Field values that replace those of generated record `index`, served exactly as given in
   * REST JSON and Bulk CSV (datetime text is not parsed, any value goes), without moving its
   * SystemModstamp: odd records in place among the generated ones. Id, IsDeleted and
   * SystemModstamp cannot be given.
   */
  overrides?: Partial<Record<SObjectType, Record<number, Record<string, unknown>>>>
}

export interface FakeRequest {
  method: string
  /** Path with repeated slashes collapsed, without the query string. */
  path: string
  /** The raw path as the client sent it (shows jsforce's `//` quirk). */
  rawPath: string
  query: Record<string, string>
  /** For token requests: the form's grant_type. */
  grantType?: string
  /** For sObject Collections requests: how many records the body carried. */
  records?: number
  /** The HTTP status answered (set when the response finished). */
  status?: number
  /** When the request arrived (performance.now() of the fake's process). */
  at: number
}

export interface FakeSaveError {
  statusCode: string
  message: string
  fields?: string[]
}

export interface SalesforceFake {
  url: string
  clientId: string
  /** The refresh token currently valid (changes on rotation). */
  readonly refreshToken: string
  /** The newest access token issued. */
  readonly accessToken: string
  readonly requests: FakeRequest[]
  /** Requests to the token endpoint with grant_type=refresh_token (successful or not). */
  refreshCount(): number
  /** Every token ever issued (to prove none of them reaches a log line). */
  issuedTokens(): string[]
  /** Invalidates every access token issued so far: the next REST call gets 401 INVALID_SESSION_ID. */
  expireAccessTokens(): void
  /**
   * The next authorize request is refused as when the user clicks Deny: the browser is redirected
   * with `error` and `error_description` (and the request's `state`) instead of a code.
   */
  refuseNextSignIn(error?: string, description?: string): void
  /** Invalidates every refresh token: the next refresh gets 400 invalid_grant. */
  revokeRefreshTokens(): void
  setRotation(on: boolean): void
  /**
   * Objects the integration user may no longer see (a permission removed): their describe
   * answers 404 NOT_FOUND, as Salesforce does for an object the user cannot access.
   */
  setInaccessible(types: SObjectType[]): void
  setApiUsage(used: number, max?: number): void
  apiUsage(): { used: number; max: number }
  count(type: SObjectType): number
  /** Current REST shape of a record (deleted ones included), or undefined. */
  record(type: SObjectType, id: string): Record<string, unknown> | undefined
  idOf(type: SObjectType, index: number): string
  insert(type: SObjectType, fields?: Record<string, unknown>): Record<string, unknown>
  update(type: SObjectType, id: string, fields: Record<string, unknown>): Record<string, unknown>
  remove(type: SObjectType, id: string): void
  /** Gives these records one SystemModstamp (a new tick by default); returns it as ISO text. */
  shareModstamp(type: SObjectType, ids: readonly string[], at?: string): string
  /** The next query or Bulk job on `type` announces its full size but serves only `serve` rows. */
  truncateNext(type: SObjectType, serve: number): void
  /**
   * The next Bulk result page of `type` (after `after` more are served whole) announces `by`
   * rows more than it holds in its Sforce-NumberOfRecords header (fewer when negative), or, with
   * 'no count', leaves the header out.
   */
  miscountResultPage(type: SObjectType, by: number | 'no count', after?: number): void
  /** The next Bulk job (of `type`, or any) ends Failed. */
  failNextBulkJob(type?: SObjectType, message?: string): void
  /** Bulk jobs stay InProgress forever while on. */
  stallBulkJobs(on: boolean): void
  /**
   * While on, queries and their next pages are held unanswered (after queryDelayMs) until it is
   * turned off: an org that stops answering mid-sync, so a sync stands still where it is.
   */
  holdQueries(on: boolean): void
  /** Queries held unanswered right now by holdQueries. */
  readonly heldQueries: number
  /** Forgets every Bulk job, as when results pass their retention: reads then get 404. */
  expireBulkJobs(): void
  /** sObject Collections updates of these ids fail with this error. */
  failWriteback(id: string, error: FakeSaveError): void
  /** A `gtm-agent connect salesforce` config for this org (the current refresh token). */
  connectConfig(): { instanceUrl: string; loginUrl: string; clientId: string; refreshToken: string }
  /** The logical clock (ISO): SystemModstamp of the next change, and every response's Date. */
  now(): string
  /** Moves the clock on, as time passing with nothing changed. */
  advanceClock(ms: number): void
  close(): Promise<void>
}

const DEFAULT_COUNTS: Record<SObjectType, number> = {
  Account: 12,
  Contact: 30,
  Lead: 8,
  Opportunity: 10,
  Task: 14,
  Event: 6,
}

/** Epoch of the generated records: record i of every object was last modified at T0 + i s. */
const T0 = Date.UTC(2025, 0, 1)
const TICK = 1000
const ORG_ID = '00DFK0000000001AAA'
const USER_ID = '005FK0000000001AAA'

export async function startSalesforceFake(
  options: SalesforceFakeOptions = {},
): Promise<SalesforceFake> {
  const state = new FakeState(options)
  const server = http.createServer((req, res) => {
    void state.handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) {
        sendJson(res, 500, [{ errorCode: 'UNKNOWN_EXCEPTION', message: String(err) }])
      } else res.end()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  state.url = `http://127.0.0.1:${port}`

  return {
    url: state.url,
    clientId: state.clientId,
    get refreshToken() {
      return state.currentRefreshToken
    },
    get accessToken() {
      return state.currentAccessToken
    },
    requests: state.requests,
    refreshCount: () => state.refreshes,
    issuedTokens: () => [...state.issued],
    expireAccessTokens: () => state.accessTokens.clear(),
    revokeRefreshTokens: () => state.refreshTokens.clear(),
    refuseNextSignIn: (error = 'access_denied', description = 'end-user denied authorization') => {
      state.refusal = { error, description }
    },
    setRotation: (on) => {
      state.rotate = on
    },
    setInaccessible: (types) => {
      state.inaccessible = new Set(types)
    },
    setApiUsage: (used, max) => {
      state.usage = used
      if (max !== undefined) state.dailyMax = max
    },
    apiUsage: () => ({ used: state.usage, max: state.dailyMax }),
    count: (type) => state.store(type).count,
    record: (type, id) => {
      const store = state.store(type)
      const index = store.indexOf(id)
      return index === undefined ? undefined : store.restRecord(index, store.fieldNames(), state)
    },
    idOf: (type, index) => idFor(type, index),
    insert: (type, fields = {}) => state.insert(type, fields),
    update: (type, id, fields) => state.update(type, id, fields),
    remove: (type, id) => state.remove(type, id),
    shareModstamp: (type, ids, at) => state.shareModstamp(type, ids, at),
    truncateNext: (type, serve) => state.truncations.set(type, serve),
    miscountResultPage: (type, by, after = 0) => {
      state.miscount = { type, by, after }
    },
    failNextBulkJob: (type, message) =>
      state.bulkFailures.push({
        ...(type ? { type } : {}),
        message: message ?? 'InvalidBatch : Failed to process query',
      }),
    stallBulkJobs: (on) => {
      state.bulkStalled = on
    },
    holdQueries: (on) => state.holdQueries(on),
    get heldQueries() {
      return state.heldQueries
    },
    expireBulkJobs: () => state.jobs.clear(),
    failWriteback: (id, error) => state.writebackFailures.set(id, error),
    connectConfig: () => ({
      instanceUrl: state.url,
      loginUrl: state.url,
      clientId: state.clientId,
      refreshToken: state.currentRefreshToken,
    }),
    now: () => new Date(state.clock).toISOString(),
    advanceClock: (ms) => {
      state.clock += ms
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        state.holdQueries(false)
        server.closeAllConnections()
        server.close((err) => (err ? reject(err) : resolve()))
      }),
  }
}

// --- the org: objects, fields, generated records ---

type FieldType =
  | 'id'
  | 'string'
  | 'textarea'
  | 'boolean'
  | 'datetime'
  | 'date'
  | 'double'
  | 'int'
  | 'currency'
  | 'percent'
  | 'email'
  | 'url'
  | 'phone'
  | 'picklist'
  | 'reference'
  | 'address'

interface FieldDef {
  name: string
  type: FieldType
  custom?: boolean
}

const PREFIX: Record<SObjectType, string> = {
  Account: '001',
  Contact: '003',
  Lead: '00Q',
  Opportunity: '006',
  Task: '00T',
  Event: '00U',
}

const f = (name: string, type: FieldType, custom = false): FieldDef => ({
  name,
  type,
  ...(custom ? { custom } : {}),
})
const SYSTEM_FIELDS = [
  f('Id', 'id'),
  f('IsDeleted', 'boolean'),
  f('OwnerId', 'reference'),
  f('CreatedDate', 'datetime'),
  f('LastModifiedDate', 'datetime'),
  f('SystemModstamp', 'datetime'),
]
const OBJECT_FIELDS: Record<SObjectType, FieldDef[]> = {
  Account: [
    f('Name', 'string'),
    f('Website', 'url'),
    f('Industry', 'picklist'),
    f('NumberOfEmployees', 'int'),
    f('AnnualRevenue', 'currency'),
    f('BillingCity', 'string'),
    f('BillingCountry', 'string'),
    f('BillingAddress', 'address'),
    f('Description', 'textarea'),
    f('GTM_Score__c', 'double', true),
    f('GTM_Tier__c', 'picklist', true),
    f('GTM_Scored_At__c', 'datetime', true),
  ],
  Contact: [
    f('AccountId', 'reference'),
    f('FirstName', 'string'),
    f('LastName', 'string'),
    f('Email', 'email'),
    f('Title', 'string'),
    f('Phone', 'phone'),
    f('LeadSource', 'picklist'),
    f('GTM_Score__c', 'double', true),
  ],
  Lead: [
    f('FirstName', 'string'),
    f('LastName', 'string'),
    f('Email', 'email'),
    f('Company', 'string'),
    f('Title', 'string'),
    f('Phone', 'phone'),
    f('Status', 'picklist'),
    f('IsConverted', 'boolean'),
    f('ConvertedAccountId', 'reference'),
  ],
  Opportunity: [
    f('AccountId', 'reference'),
    f('Name', 'string'),
    f('StageName', 'picklist'),
    f('Amount', 'currency'),
    f('CloseDate', 'date'),
    f('IsClosed', 'boolean'),
    f('IsWon', 'boolean'),
    f('Probability', 'percent'),
  ],
  Task: [
    f('WhoId', 'reference'),
    f('WhatId', 'reference'),
    f('AccountId', 'reference'),
    f('Subject', 'string'),
    f('Status', 'picklist'),
    f('Priority', 'picklist'),
    f('Type', 'picklist'),
    f('TaskSubtype', 'picklist'),
    f('ActivityDate', 'date'),
    f('CompletedDateTime', 'datetime'),
    f('IsClosed', 'boolean'),
  ],
  Event: [
    f('WhoId', 'reference'),
    f('WhatId', 'reference'),
    f('AccountId', 'reference'),
    f('Subject', 'string'),
    f('Type', 'picklist'),
    f('StartDateTime', 'datetime'),
    f('EndDateTime', 'datetime'),
    f('ActivityDateTime', 'datetime'),
    f('DurationInMinutes', 'int'),
    f('Location', 'string'),
  ],
}

const INDUSTRIES = ['Technology', 'Finance', 'Healthcare', 'Retail', 'Manufacturing']
const TITLES = ['VP Sales', 'Engineer', 'CFO']
const STAGES = ['Prospecting', 'Qualification', 'Closed Won', 'Closed Lost']
const TASK_SUBTYPES = ['Email', 'Call', 'Task']
const TASK_TYPES = ['Email', 'Call', 'Meeting', null]
const EVENT_TYPES = ['Meeting', 'Call', 'Email']

/** Internal record: datetimes are epoch milliseconds, dates `YYYY-MM-DD`. */
type Rec = Record<string, unknown>

function idFor(type: SObjectType, index: number): string {
  return `${PREFIX[type]}FK${String(index).padStart(10, '0')}AAA`
}

function indexFromId(type: SObjectType, id: string): number | undefined {
  const m = /^(\w{3})FK(\d{10})AAA$/.exec(id) ?? /^(\w{3})FK(\d{10})$/.exec(id)
  if (!m || m[1] !== PREFIX[type]) return undefined
  return Number(m[2])
}

const pad2 = (n: number): string => String(n).padStart(2, '0')

/** The id of the Account (or Contact) a generated record points at, null in an org without any. */
const accountOf = (counts: Record<SObjectType, number>, n: number): string | null =>
  counts.Account > 0 ? idFor('Account', n % counts.Account) : null
const contactOf = (counts: Record<SObjectType, number>, n: number): string | null =>
  counts.Contact > 0 ? idFor('Contact', n % counts.Contact) : null

/**
 * Record i of `type` as first generated (before any change). Built field by field in one fixed
 * order (no spreads, no closures per record): a large read generates every record it serves.
 */
function generate(type: SObjectType, i: number, counts: Record<SObjectType, number>): Rec {
  const stamp = T0 + i * TICK
  const rec: Rec = {
    Id: idFor(type, i),
    IsDeleted: false,
    OwnerId: USER_ID,
    CreatedDate: stamp - 86_400_000,
    LastModifiedDate: stamp,
    SystemModstamp: stamp,
  }
  switch (type) {
    case 'Account':
      rec.Name = i % 4 === 1 ? `  Account ${i}  ` : `Account ${i}`
      rec.Website = `https://www.Account${i}.Example.com/home`
      rec.Industry = INDUSTRIES[i % INDUSTRIES.length]
      rec.NumberOfEmployees = (i + 1) * 10
      rec.AnnualRevenue = (i + 1) * 125_000.5
      rec.BillingCity = `City ${i}`
      rec.BillingCountry = 'US'
      rec.BillingAddress = { city: `City ${i}`, country: 'US' }
      rec.Description = i % 3 === 2 ? `Line one of ${i}\nSays "hello", then; more` : null
      rec.GTM_Score__c = null
      rec.GTM_Tier__c = null
      rec.GTM_Scored_At__c = null
      return rec
    case 'Contact':
      rec.AccountId = accountOf(counts, i)
      rec.FirstName = `First${i}`
      rec.LastName = `Last${i}`
      rec.Email = `Contact${i}@Example.com`
      rec.Title = TITLES[i % TITLES.length]
      rec.Phone = `+1 555 ${1000 + i}`
      rec.LeadSource = 'Web'
      rec.GTM_Score__c = null
      return rec
    case 'Lead': {
      const converted = i % 4 === 3
      rec.FirstName = `LeadFirst${i}`
      rec.LastName = `LeadLast${i}`
      rec.Email = `lead${i}@example.org`
      rec.Company = `Lead Co ${i}`
      rec.Title = 'Manager'
      rec.Phone = null
      rec.Status = converted ? 'Closed - Converted' : 'Open - Not Contacted'
      rec.IsConverted = converted
      rec.ConvertedAccountId = converted ? accountOf(counts, i) : null
      return rec
    }
    case 'Opportunity': {
      const stage = STAGES[i % STAGES.length]!
      rec.AccountId = accountOf(counts, i)
      rec.Name = `Opportunity ${i}`
      rec.StageName = stage
      rec.Amount = (i + 1) * 1000
      rec.CloseDate = `2025-06-${pad2(1 + (i % 28))}`
      rec.IsClosed = stage.startsWith('Closed')
      rec.IsWon = stage === 'Closed Won'
      rec.Probability = stage === 'Closed Won' ? 100 : stage === 'Closed Lost' ? 0 : 20
      return rec
    }
    case 'Task': {
      const done = i % 2 === 0
      const who = i % Math.max(1, counts.Contact)
      rec.WhoId = contactOf(counts, i)
      rec.WhatId = accountOf(counts, who)
      rec.AccountId = accountOf(counts, who)
      rec.Subject = `Task ${i}`
      rec.Status = done ? 'Completed' : 'Not Started'
      rec.Priority = 'Normal'
      rec.Type = TASK_TYPES[i % TASK_TYPES.length]
      rec.TaskSubtype = TASK_SUBTYPES[i % TASK_SUBTYPES.length]
      rec.ActivityDate = `2025-05-${pad2(1 + (i % 28))}`
      rec.CompletedDateTime = done ? stamp - 3_600_000 : null
      rec.IsClosed = done
      return rec
    }
    case 'Event': {
      const start = Date.UTC(2025, 4, 1 + (i % 28), 15, 0, 0)
      const who = i % Math.max(1, counts.Contact)
      rec.WhoId = contactOf(counts, i)
      rec.WhatId = accountOf(counts, who)
      rec.AccountId = accountOf(counts, who)
      rec.Subject = `Meeting ${i}`
      rec.Type = EVENT_TYPES[i % EVENT_TYPES.length]
      rec.StartDateTime = start
      rec.EndDateTime = start + 30 * 60_000
      rec.ActivityDateTime = start
      rec.DurationInMinutes = 30
      rec.Location = 'Zoom'
      return rec
    }
  }
}

/** One object's records: generated ones by index, changes in `overrides`. */
class ObjectStore {
  readonly type: SObjectType
  readonly baseCount: number
  count: number
  readonly fields: FieldDef[]
  readonly byName = new Map<string, FieldDef>()
  readonly overrides = new Map<number, Rec>()
  /** Indices whose SystemModstamp is not the generated one (all inserted ones included). */
  readonly moved = new Set<number>()
  #movedSorted: number[] | null = null
  readonly #counts: Record<SObjectType, number>
  readonly #extra: string[] = []

  constructor(type: SObjectType, counts: Record<SObjectType, number>, extra: number) {
    this.type = type
    this.baseCount = counts[type]
    this.count = counts[type]
    this.#counts = counts
    this.fields = [...SYSTEM_FIELDS, ...OBJECT_FIELDS[type]]
    for (let n = 1; n <= extra; n++) {
      const name = `Extra_Field_${String(n).padStart(3, '0')}__c`
      this.fields.push(f(name, 'string', true))
      this.#extra.push(name)
    }
    for (const field of this.fields) this.byName.set(field.name.toLowerCase(), field)
  }

  fieldNames(): string[] {
    return this.fields.map((field) => field.name)
  }

  indexOf(id: string): number | undefined {
    const index = indexFromId(this.type, id)
    return index !== undefined && index < this.count ? index : undefined
  }

  stampOf(i: number): number {
    const stamp = this.overrides.get(i)?.SystemModstamp
    return typeof stamp === 'number' ? stamp : T0 + i * TICK
  }

  isDeleted(i: number): boolean {
    return this.overrides.get(i)?.IsDeleted === true
  }

  /** The record's current internal values. */
  get(i: number): Rec {
    const rec = generate(this.type, i, this.#counts)
    for (const name of this.#extra) rec[name] = `${name.slice(12, 15)}-${i}`
    const override = this.overrides.get(i)
    return override ? { ...rec, ...override } : rec
  }

  patch(i: number, fields: Rec): void {
    this.overrides.set(i, { ...this.overrides.get(i), ...fields })
    if (fields.SystemModstamp !== undefined) {
      this.moved.add(i)
      this.#movedSorted = null
    }
  }

  /** Indices in (SystemModstamp, Id) order, starting at the first with SystemModstamp ≥ from. */
  *ordered(from?: number): Generator<number> {
    const moved = this.#sortedMoved()
    let b = from === undefined ? 0 : Math.max(0, Math.ceil((from - T0) / TICK))
    let m = 0
    if (from !== undefined) {
      let lo = 0
      let hi = moved.length
      while (lo < hi) {
        const mid = (lo + hi) >> 1
        if (this.stampOf(moved[mid]!) < from) lo = mid + 1
        else hi = mid
      }
      m = lo
    }
    for (;;) {
      while (b < this.baseCount && this.moved.has(b)) b++
      const hasBase = b < this.baseCount
      const hasMoved = m < moved.length
      if (!hasBase && !hasMoved) return
      if (!hasMoved || (hasBase && this.#before(b, moved[m]!))) yield b++
      else yield moved[m++]!
    }
  }

  /** The REST shape of a record: `attributes` first, then the fields asked for. */
  restRecord(i: number, names: readonly string[], org: { version: string }): Rec {
    const rec = this.get(i)
    const out: Rec = {
      attributes: {
        type: this.type,
        url: `/services/data/v${org.version}/sobjects/${this.type}/${idFor(this.type, i)}`,
      },
    }
    for (const name of names) {
      const field = this.byName.get(name.toLowerCase())!
      out[field.name] = restValue(field, rec[field.name])
    }
    return out
  }

  #before(a: number, b: number): boolean {
    const sa = this.stampOf(a)
    const sb = this.stampOf(b)
    return sa < sb || (sa === sb && a < b)
  }

  #sortedMoved(): number[] {
    this.#movedSorted ??= [...this.moved].sort((a, b) => (this.#before(a, b) ? -1 : 1))
    return this.#movedSorted
  }
}

/** A Salesforce datetime as the REST API writes it: `2025-03-01T17:01:30.000+0000`. */
function restDateTime(ms: number): string {
  return isoDateTime(ms).replace('Z', '+0000')
}

/**
 * `new Date(ms).toISOString()`, without its cost: a Bulk page holds a few datetimes per row, and
 * formatting them was most of the fake's own CPU. Each day's `YYYY-MM-DDT` is formatted once;
 * what is not a whole number of milliseconds goes to toISOString as it is.
 */
export function isoDateTime(ms: number): string {
  if (!Number.isSafeInteger(ms)) return new Date(ms).toISOString()
  const day = Math.floor(ms / DAY_MS)
  let prefix = dayPrefixes.get(day)
  if (prefix === undefined) {
    prefix = new Date(day * DAY_MS).toISOString().slice(0, -13)
    if (dayPrefixes.size >= 10_000) dayPrefixes.clear()
    dayPrefixes.set(day, prefix)
  }
  const inDay = ms - day * DAY_MS
  const milli = inDay % 1000
  const seconds = (inDay - milli) / 1000
  return `${prefix}${TWO_DIGITS[Math.floor(seconds / 3600)]}:${TWO_DIGITS[Math.floor(seconds / 60) % 60]}:${TWO_DIGITS[seconds % 60]}.${String(milli).padStart(3, '0')}Z`
}

const DAY_MS = 86_400_000
const dayPrefixes = new Map<number, string>()
const TWO_DIGITS = Array.from({ length: 100 }, (_, n) => String(n).padStart(2, '0'))

function restValue(field: FieldDef, value: unknown): unknown {
  if (value === undefined || value === null) return null
  if (field.type === 'datetime' && typeof value === 'number') return restDateTime(value)
  return value
}

/** A Bulk API 2.0 CSV cell: empty for null, `…Z` datetimes, quoted when it must be. */
function csvCell(field: FieldDef, value: unknown): string {
  if (value === undefined || value === null) return ''
  if (typeof value === 'string') return csvText(value)
  // A datetime, a finite number or a boolean never holds a character CSV must quote.
  if (field.type === 'datetime' && typeof value === 'number') return isoDateTime(value)
  if ((typeof value === 'number' && Number.isFinite(value)) || typeof value === 'boolean') {
    return String(value)
  }
  return csvText(JSON.stringify(value))
}

function csvText(text: string): string {
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text
}

// --- SOQL: the subset the connector and writeback preview send ---

type Literal =
  { kind: 'datetime'; ms: number } | { kind: 'value'; value: string | number | boolean | null }
type Expr =
  | { op: 'and' | 'or'; left: Expr; right: Expr }
  | { op: 'cmp'; field: FieldDef; cmp: string; value: Literal }
  | { op: 'in'; field: FieldDef; values: Literal[] }

interface ParsedQuery {
  type: SObjectType
  count: boolean
  fields: FieldDef[]
  where: Expr | null
  orderById: boolean
  limit: number | undefined
}

class SoqlError extends Error {
  readonly errorCode: string
  constructor(errorCode: string, message: string) {
    super(message)
    this.errorCode = errorCode
  }
}

const TOKEN =
  /\s*(?:('(?:\\.|[^'\\])*')|(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))|(\d{4}-\d{2}-\d{2})|(-?\d+(?:\.\d+)?)|([A-Za-z_][A-Za-z0-9_.]*)|(<=|>=|!=|<>|=|<|>|\(|\)|,))/y

interface Token {
  kind: 'string' | 'datetime' | 'date' | 'number' | 'ident' | 'punct'
  text: string
}

function tokenize(soql: string): Token[] {
  const kinds = ['string', 'datetime', 'date', 'number', 'ident', 'punct'] as const
  const tokens: Token[] = []
  let pos = 0
  while (pos < soql.length) {
    TOKEN.lastIndex = pos
    const m = TOKEN.exec(soql)
    if (!m) {
      if (soql.slice(pos).trim() === '') break
      throw new SoqlError('MALFORMED_QUERY', `unexpected token at: ${soql.slice(pos, pos + 20)}`)
    }
    const group = m.slice(1).findIndex((g) => g !== undefined)
    tokens.push({ kind: kinds[group]!, text: m[group + 1]! })
    pos = TOKEN.lastIndex
  }
  return tokens
}

function parseSoql(soql: string, stores: Map<SObjectType, ObjectStore>): ParsedQuery {
  const tokens = tokenize(soql)
  let pos = 0
  const peek = (): Token | undefined => tokens[pos]
  const isWord = (word: string): boolean =>
    peek()?.kind === 'ident' && peek()!.text.toUpperCase() === word
  const expectWord = (word: string): void => {
    if (!isWord(word))
      throw new SoqlError('MALFORMED_QUERY', `expected ${word} near "${peek()?.text ?? 'end'}"`)
    pos++
  }
  const expectPunct = (text: string): void => {
    if (peek()?.text !== text)
      throw new SoqlError('MALFORMED_QUERY', `expected "${text}" near "${peek()?.text ?? 'end'}"`)
    pos++
  }

  expectWord('SELECT')
  const selected: string[] = []
  let count = false
  if (isWord('COUNT') && tokens[pos + 1]?.text === '(') {
    pos += 2
    expectPunct(')')
    count = true
  } else {
    for (;;) {
      const token = tokens[pos++]
      if (token?.kind !== 'ident') throw new SoqlError('MALFORMED_QUERY', 'expected a field name')
      selected.push(token.text)
      if (peek()?.text !== ',') break
      pos++
    }
  }
  expectWord('FROM')
  const objectName = tokens[pos++]?.text ?? ''
  const type = SOBJECT_TYPES.find((t) => t.toLowerCase() === objectName.toLowerCase())
  if (!type) {
    throw new SoqlError('INVALID_TYPE', `sObject type '${objectName}' is not supported.`)
  }
  const store = stores.get(type)!
  const field = (name: string): FieldDef => {
    const def = store.byName.get(name.toLowerCase())
    if (!def) throw new SoqlError('INVALID_FIELD', `No such column '${name}' on entity '${type}'.`)
    return def
  }
  const fields = selected.map(field)

  const literal = (def: FieldDef): Literal => {
    const token = tokens[pos++]
    if (!token) throw new SoqlError('MALFORMED_QUERY', 'expected a value')
    if (def.type === 'datetime') {
      if (token.kind === 'datetime')
        return { kind: 'datetime', ms: Date.parse(normalizeOffset(token.text)) }
      if (token.kind === 'ident' && token.text.toUpperCase() === 'NULL')
        return { kind: 'value', value: null }
      throw new SoqlError(
        'INVALID_FIELD',
        `value of filter criterion for field '${def.name}' must be of type dateTime and should not be enclosed in quotes`,
      )
    }
    if (token.kind === 'string')
      return { kind: 'value', value: token.text.slice(1, -1).replace(/\\(.)/g, '$1') }
    if (token.kind === 'number') return { kind: 'value', value: Number(token.text) }
    if (token.kind === 'date') return { kind: 'value', value: token.text }
    const word = token.text.toUpperCase()
    if (word === 'TRUE' || word === 'FALSE') return { kind: 'value', value: word === 'TRUE' }
    if (word === 'NULL') return { kind: 'value', value: null }
    throw new SoqlError('MALFORMED_QUERY', `unexpected value "${token.text}"`)
  }
  const primary = (): Expr => {
    if (peek()?.text === '(') {
      pos++
      const inner = disjunction()
      expectPunct(')')
      return inner
    }
    const token = tokens[pos++]
    if (token?.kind !== 'ident') throw new SoqlError('MALFORMED_QUERY', 'expected a condition')
    const def = field(token.text)
    if (isWord('IN')) {
      pos++
      expectPunct('(')
      const values: Literal[] = []
      for (;;) {
        values.push(literal(def))
        if (peek()?.text !== ',') break
        pos++
      }
      expectPunct(')')
      return { op: 'in', field: def, values }
    }
    const cmp = tokens[pos++]
    if (cmp?.kind !== 'punct' || !['=', '!=', '<>', '<', '<=', '>', '>='].includes(cmp.text)) {
      throw new SoqlError('MALFORMED_QUERY', `expected a comparison after ${def.name}`)
    }
    return { op: 'cmp', field: def, cmp: cmp.text === '<>' ? '!=' : cmp.text, value: literal(def) }
  }
  const conjunction = (): Expr => {
    let left = primary()
    while (isWord('AND')) {
      pos++
      left = { op: 'and', left, right: primary() }
    }
    return left
  }
  const disjunction = (): Expr => {
    let left = conjunction()
    while (isWord('OR')) {
      pos++
      left = { op: 'or', left, right: conjunction() }
    }
    return left
  }

  let where: Expr | null = null
  if (isWord('WHERE')) {
    pos++
    where = disjunction()
  }
  let orderById = false
  if (isWord('ORDER')) {
    pos++
    expectWord('BY')
    const order: string[] = []
    for (;;) {
      const name = tokens[pos++]?.text ?? ''
      order.push(field(name).name)
      if (isWord('ASC')) pos++
      else if (isWord('DESC'))
        throw new SoqlError('MALFORMED_QUERY', 'this fake orders ascending only')
      if (peek()?.text !== ',') break
      pos++
    }
    const key = order.join(',')
    if (key === 'Id') orderById = true
    else if (key !== 'SystemModstamp,Id' && key !== 'SystemModstamp') {
      throw new SoqlError('MALFORMED_QUERY', `this fake cannot ORDER BY ${key}`)
    }
  }
  let limit: number | undefined
  if (isWord('LIMIT')) {
    pos++
    limit = Number(tokens[pos++]?.text)
    if (!Number.isInteger(limit) || limit < 0) throw new SoqlError('MALFORMED_QUERY', 'bad LIMIT')
  }
  if (pos !== tokens.length) {
    throw new SoqlError('MALFORMED_QUERY', `unexpected token "${tokens[pos]?.text ?? ''}"`)
  }
  return { type, count, fields, where, orderById, limit }
}

function normalizeOffset(text: string): string {
  return text.replace(/([+-]\d{2})(\d{2})$/, '$1:$2')
}

/** A lower bound on SystemModstamp every match must meet, so scans can start there. */
function lowerStampBound(expr: Expr | null): number | undefined {
  if (!expr) return undefined
  if (expr.op === 'cmp') {
    if (expr.field.name !== 'SystemModstamp' || expr.value.kind !== 'datetime') return undefined
    return ['=', '>', '>='].includes(expr.cmp) ? expr.value.ms : undefined
  }
  if (expr.op === 'in') return undefined
  const left = lowerStampBound(expr.left)
  const right = lowerStampBound(expr.right)
  if (expr.op === 'and') {
    if (left === undefined) return right
    return right === undefined ? left : Math.max(left, right)
  }
  return left === undefined || right === undefined ? undefined : Math.min(left, right)
}

function compare(a: unknown, b: unknown, ci: boolean): number {
  if (typeof a === 'string' && typeof b === 'string') {
    const x = ci ? a.toLowerCase() : a
    const y = ci ? b.toLowerCase() : b
    return x < y ? -1 : x > y ? 1 : 0
  }
  if (typeof a === 'number' && typeof b === 'number') return a - b
  if (typeof a === 'boolean' && typeof b === 'boolean') return Number(a) - Number(b)
  return Number.NaN
}

function evaluate(expr: Expr, value: (field: FieldDef) => unknown): boolean {
  switch (expr.op) {
    case 'and':
      return evaluate(expr.left, value) && evaluate(expr.right, value)
    case 'or':
      return evaluate(expr.left, value) || evaluate(expr.right, value)
    case 'in': {
      const actual = value(expr.field)
      return expr.values.some(
        (v) => compare(actual, literalValue(v), expr.field.type !== 'id') === 0,
      )
    }
    case 'cmp': {
      const actual = value(expr.field)
      const wanted = literalValue(expr.value)
      if (wanted === null || actual === null || actual === undefined) {
        const bothNull = wanted === null && (actual === null || actual === undefined)
        return expr.cmp === '=' ? bothNull : expr.cmp === '!=' ? !bothNull : false
      }
      const c = compare(actual, wanted, expr.field.type !== 'id' && expr.field.type !== 'reference')
      if (Number.isNaN(c)) return false
      switch (expr.cmp) {
        case '=':
          return c === 0
        case '!=':
          return c !== 0
        case '<':
          return c < 0
        case '<=':
          return c <= 0
        case '>':
          return c > 0
        default:
          return c >= 0
      }
    }
  }
}

function literalValue(literal: Literal): unknown {
  return literal.kind === 'datetime' ? literal.ms : literal.value
}

/** Ids the WHERE clause pins records to (`Id = 'x'`, `Id IN (…)`), when it does. */
function pinnedIds(expr: Expr | null): string[] | undefined {
  if (!expr) return undefined
  if (expr.op === 'cmp' && expr.field.name === 'Id' && expr.cmp === '=') {
    return [String(literalValue(expr.value))]
  }
  if (expr.op === 'in' && expr.field.name === 'Id')
    return expr.values.map((v) => String(literalValue(v)))
  if (expr.op === 'and') return pinnedIds(expr.left) ?? pinnedIds(expr.right)
  return undefined
}

// --- the server ---

interface Locator {
  type: SObjectType
  fields: FieldDef[]
  indices: number[]
  /** Rows actually served (fewer than indices.length when truncated). */
  served: number
  batch: number
}

interface BulkJob {
  id: string
  type: SObjectType
  query: ParsedQuery
  operation: 'query' | 'queryAll'
  soql: string
  state: 'UploadComplete' | 'InProgress' | 'JobComplete' | 'Failed' | 'Aborted'
  polls: number
  createdDate: number
  /** performance.now() at creation, for bulkJobMs. */
  startedAt: number
  apiVersion: string
  failMessage?: string
  indices?: number[]
  served?: number
}

class FakeState {
  url = ''
  version = '62.0'
  readonly clientId: string
  readonly #clientSecret: string | undefined
  readonly #options: SalesforceFakeOptions
  readonly #stores = new Map<SObjectType, ObjectStore>()
  readonly requests: FakeRequest[] = []
  /** Collections updates held unanswered (holdCollections). */
  heldCollections = 0
  /** Queries waiting on holdQueries, and what lets them go. */
  heldQueries = 0
  #queryHold: { released: Promise<void>; release: () => void } | undefined
  inaccessible = new Set<SObjectType>()
  readonly accessTokens = new Set<string>()
  readonly refreshTokens = new Set<string>()
  readonly issued: string[] = []
  readonly #codes = new Map<
    string,
    { clientId: string; redirectUri: string; challenge?: string; method: string }
  >()
  readonly #locators = new Map<string, Locator>()
  readonly jobs = new Map<string, BulkJob>()
  readonly truncations = new Map<SObjectType, number>()
  /** See SalesforceFake.miscountResultPage. */
  miscount: { type: SObjectType; by: number | 'no count'; after: number } | undefined
  readonly bulkFailures: Array<{ type?: SObjectType; message: string }> = []
  readonly writebackFailures = new Map<string, FakeSaveError>()
  bulkStalled = false
  refusal: { error: string; description: string } | undefined
  currentRefreshToken: string
  currentAccessToken = ''
  rotate: boolean
  refreshes = 0
  usage: number
  dailyMax: number
  clock: number
  #serial = 0

  constructor(options: SalesforceFakeOptions) {
    this.#options = options
    this.clientId = options.clientId ?? '3MVG9fake.client.id'
    this.#clientSecret = options.clientSecret
    this.rotate = options.rotateRefreshTokens ?? false
    this.usage = options.apiUsage ?? 0
    this.dailyMax = options.dailyApiMax ?? 100_000
    const counts = { ...DEFAULT_COUNTS, ...options.counts }
    for (const type of SOBJECT_TYPES) {
      this.#stores.set(type, new ObjectStore(type, counts, options.extraFields?.[type] ?? 0))
    }
    for (const [type, records] of Object.entries(options.overrides ?? {})) {
      const store = this.store(type as SObjectType)
      for (const [index, fields] of Object.entries(records ?? {})) {
        store.overrides.set(Number(index), verbatimFields(store, Number(index), fields))
      }
    }
    const largest = Math.max(...SOBJECT_TYPES.map((t) => counts[t]))
    // The clock starts after every generated record, on a whole day.
    this.clock = Math.ceil((T0 + (largest + 1) * TICK) / 86_400_000) * 86_400_000
    this.currentRefreshToken = this.#token('5Aep861')
    this.refreshTokens.add(this.currentRefreshToken)
  }

  store(type: SObjectType): ObjectStore {
    return this.#stores.get(type)!
  }

  #tick(): number {
    this.clock += TICK
    return this.clock
  }

  #token(prefix: string): string {
    const token = `${prefix}${randomBytes(24).toString('base64url')}`
    this.issued.push(token)
    return token
  }

  #nextId(prefix: string): string {
    this.#serial += 1
    return `${prefix}FK${String(this.#serial).padStart(10, '0')}AAA`
  }

  // --- knobs ---

  insert(type: SObjectType, fields: Rec): Rec {
    const store = this.store(type)
    const index = store.count
    store.count += 1
    const now = this.#tick()
    store.patch(index, {
      ...toInternal(store, fields),
      CreatedDate: now,
      LastModifiedDate: now,
      SystemModstamp: now,
    })
    return store.restRecord(index, store.fieldNames(), this)
  }

  update(type: SObjectType, id: string, fields: Rec): Rec {
    const store = this.store(type)
    const index = this.#require(store, id)
    const now = this.#tick()
    store.patch(index, { ...toInternal(store, fields), LastModifiedDate: now, SystemModstamp: now })
    return store.restRecord(index, store.fieldNames(), this)
  }

  remove(type: SObjectType, id: string): void {
    const store = this.store(type)
    const index = this.#require(store, id)
    store.patch(index, { IsDeleted: true, SystemModstamp: this.#tick() })
  }

  shareModstamp(type: SObjectType, ids: readonly string[], at?: string): string {
    const store = this.store(type)
    const stamp = at === undefined ? this.#tick() : Date.parse(at)
    for (const id of ids)
      store.patch(this.#require(store, id), { SystemModstamp: stamp, LastModifiedDate: stamp })
    return new Date(stamp).toISOString()
  }

  #require(store: ObjectStore, id: string): number {
    const index = store.indexOf(id)
    if (index === undefined) throw new Error(`The fake has no ${store.type} with id ${id}.`)
    return index
  }

  // --- HTTP ---

  async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const rawUrl = req.url ?? '/'
    const url = new URL(rawUrl, 'http://127.0.0.1')
    const path = url.pathname.replace(/\/{2,}/g, '/')
    const method = req.method ?? 'GET'
    const at = performance.now()
    const body = await readBody(req)
    const entry: FakeRequest = {
      at,
      method,
      path,
      rawPath: url.pathname,
      query: Object.fromEntries(url.searchParams),
    }
    this.requests.push(entry)
    res.on('finish', () => {
      entry.status = res.statusCode
    })
    // The org's clock, the one SystemModstamps come from, as every Salesforce response has it.
    res.setHeader('Date', new Date(this.clock).toUTCString())

    if (path === '/services/oauth2/authorize' && method === 'GET') return this.#authorize(url, res)
    if (path === '/services/oauth2/token' && method === 'POST') {
      const form = new URLSearchParams(body)
      entry.grantType = form.get('grant_type') ?? ''
      return this.#tokenEndpoint(form, res)
    }
    if (path === '/services/oauth2/revoke' && method === 'POST') {
      const token = new URLSearchParams(body).get('token') ?? ''
      this.accessTokens.delete(token)
      this.refreshTokens.delete(token)
      res.writeHead(200).end()
      return
    }
    if (path.replace(/\/$/, '') === '/services/data' && method === 'GET') {
      // The API versions list: no session needed.
      return sendJson(res, 200, [
        { label: "Winter '25", url: '/services/data/v62.0', version: '62.0' },
      ])
    }
    const data = /^\/services\/data\/v(\d+\.\d)(\/.*)?$/.exec(path)
    if (!data)
      return sendJson(res, 404, [
        { errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' },
      ])
    if (rawUrl.length > (this.#options.maxUrlLength ?? 16_384)) {
      res
        .writeHead(414, { 'content-type': 'text/html' })
        .end('<html><body>414 URI Too Long</body></html>')
      return
    }
    const auth = req.headers.authorization ?? ''
    const token = auth.startsWith('Bearer ') ? auth.slice(7) : ''
    if (!this.accessTokens.has(token)) {
      return sendJson(res, 401, [
        { message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' },
      ])
    }
    if (this.usage >= this.dailyMax) {
      res.setHeader('Sforce-Limit-Info', `api-usage=${this.usage}/${this.dailyMax}`)
      return sendJson(res, 403, [
        { errorCode: 'REQUEST_LIMIT_EXCEEDED', message: 'TotalRequests Limit exceeded.' },
      ])
    }
    this.usage += 1
    res.setHeader('Sforce-Limit-Info', `api-usage=${this.usage}/${this.dailyMax}`)
    const version = data[1]!
    const rest = (data[2] ?? '/').replace(/\/$/, '') || '/'
    if (/^\/query(All)?(\/|$)/.test(rest)) {
      if (this.#options.queryDelayMs) await sleep(this.#options.queryDelayMs)
      while (this.#queryHold) {
        this.heldQueries += 1
        try {
          await this.#queryHold.released
        } finally {
          this.heldQueries -= 1
        }
      }
    }
    try {
      this.#route(method, rest, version, url, body, req, res)
    } catch (err) {
      if (err instanceof SoqlError)
        return sendJson(res, 400, [{ message: err.message, errorCode: err.errorCode }])
      throw err
    }
  }

  holdQueries(on: boolean): void {
    if (on) {
      if (this.#queryHold) return
      let release = (): void => undefined
      const released = new Promise<void>((resolve) => (release = resolve))
      this.#queryHold = { released, release }
    } else {
      this.#queryHold?.release()
      this.#queryHold = undefined
    }
  }

  #route(
    method: string,
    rest: string,
    version: string,
    url: URL,
    body: string,
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ): void {
    let m: RegExpExecArray | null
    if (method === 'GET' && (rest === '/query' || rest === '/queryAll')) {
      return this.#query(url.searchParams.get('q') ?? '', rest === '/queryAll', version, req, res)
    }
    if (method === 'GET' && (m = /^\/query(?:All)?\/([^/]+)$/.exec(rest)))
      return this.#queryMore(m[1]!, version, res)
    if (method === 'GET' && rest === '/limits') return this.#limits(res)
    if (method === 'GET' && (m = /^\/sobjects\/(\w+)\/describe$/.exec(rest)))
      return this.#describe(m[1]!, res)
    if (method === 'GET' && (m = /^\/sobjects\/(\w+)\/deleted$/.exec(rest)))
      return this.#deleted(m[1]!, url, res)
    if (rest === '/jobs/query' && method === 'POST') return this.#createJob(body, version, res)
    if ((m = /^\/jobs\/query\/([^/]+)$/.exec(rest))) return this.#job(method, m[1]!, body, res)
    if (method === 'GET' && (m = /^\/jobs\/query\/([^/]+)\/results$/.exec(rest))) {
      return this.#results(m[1]!, version, url, res)
    }
    if (method === 'PATCH' && rest === '/composite/sobjects') {
      if (this.heldCollections < (this.#options.holdCollections ?? 0)) {
        this.heldCollections += 1
        return
      }
      return this.#collections(body, res)
    }
    sendJson(res, 404, [
      { errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' },
    ])
  }

  #authorize(url: URL, res: http.ServerResponse): void {
    const p = url.searchParams
    const redirectUri = p.get('redirect_uri')
    if (p.get('client_id') !== this.clientId || !redirectUri) {
      return sendJson(res, 400, {
        error: 'invalid_client_id',
        error_description: 'client identifier invalid',
      })
    }
    // An untrusted redirect_uri is never redirected to: Salesforce shows its own error page.
    const registered = this.#options.callbackUrls
    if (registered && !registered.includes(redirectUri)) {
      res
        .writeHead(400, { 'content-type': 'text/html' })
        .end(
          '<html><body>error=redirect_uri_mismatch: redirect_uri must match configuration</body></html>',
        )
      return
    }
    const location = new URL(redirectUri)
    const state = p.get('state')
    if (state !== null) location.searchParams.set('state', state)
    if (this.refusal || p.get('response_type') !== 'code') {
      const refusal = this.refusal ?? {
        error: 'unsupported_response_type',
        description: 'response type not supported',
      }
      this.refusal = undefined
      location.searchParams.set('error', refusal.error)
      location.searchParams.set('error_description', refusal.description)
      res.writeHead(302, { location: location.toString() }).end()
      return
    }
    const code = `aPrx${randomBytes(16).toString('base64url')}`
    const challenge = p.get('code_challenge')
    this.#codes.set(code, {
      clientId: this.clientId,
      redirectUri,
      ...(challenge ? { challenge } : {}),
      method: p.get('code_challenge_method') ?? 'S256',
    })
    location.searchParams.set('code', code)
    res.writeHead(302, { location: location.toString() }).end()
  }

  async #tokenEndpoint(form: URLSearchParams, res: http.ServerResponse): Promise<void> {
    const grant = form.get('grant_type')
    if (grant === 'refresh_token') this.refreshes += 1
    if (this.#options.tokenDelayMs) await sleep(this.#options.tokenDelayMs)
    const fail = (error: string, description: string): void =>
      sendJson(res, 400, { error, error_description: description })
    if (form.get('client_id') !== this.clientId)
      return fail('invalid_client_id', 'client identifier invalid')
    if (this.#clientSecret !== undefined && form.get('client_secret') !== this.#clientSecret) {
      return fail('invalid_client', 'invalid client credentials')
    }
    if (grant === 'authorization_code') {
      const code = this.#codes.get(form.get('code') ?? '')
      if (!code) return fail('invalid_grant', 'invalid authorization code')
      this.#codes.delete(form.get('code') ?? '')
      if (code.redirectUri !== form.get('redirect_uri'))
        return fail('redirect_uri_mismatch', 'redirect_uri must match configuration')
      if (code.challenge !== undefined) {
        const verifier = form.get('code_verifier') ?? ''
        const expected =
          code.method === 'plain'
            ? verifier
            : createHash('sha256').update(verifier).digest('base64url')
        if (!verifier || expected !== code.challenge)
          return fail('invalid_grant', 'invalid code verifier')
      }
      const refreshToken = this.#token('5Aep861')
      this.refreshTokens.add(refreshToken)
      this.currentRefreshToken = refreshToken
      return sendJson(res, 200, this.#tokenResponse(refreshToken))
    }
    if (grant === 'refresh_token') {
      const presented = form.get('refresh_token') ?? ''
      if (!this.refreshTokens.has(presented))
        return fail('invalid_grant', 'expired access/refresh token')
      let rotated: string | undefined
      if (this.rotate) {
        this.refreshTokens.delete(presented)
        rotated = this.#token('5Aep861')
        this.refreshTokens.add(rotated)
        this.currentRefreshToken = rotated
      }
      return sendJson(res, 200, this.#tokenResponse(rotated))
    }
    fail('unsupported_grant_type', 'grant type not supported')
  }

  #tokenResponse(refreshToken: string | undefined): Rec {
    const accessToken = this.#token(`${ORG_ID.slice(0, 15)}!AQ`)
    this.accessTokens.add(accessToken)
    this.currentAccessToken = accessToken
    return {
      access_token: accessToken,
      ...(refreshToken ? { refresh_token: refreshToken } : {}),
      signature: randomBytes(32).toString('base64'),
      scope: 'api refresh_token',
      instance_url: this.url,
      id: `${this.url}/id/${ORG_ID}/${USER_ID}`,
      token_type: 'Bearer',
      issued_at: String(Date.now()),
    }
  }

  #query(
    soql: string,
    all: boolean,
    version: string,
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ): void {
    const query = parseSoql(soql, this.#stores)
    const indices = this.#match(query, all)
    if (query.count)
      return sendJson(res, 200, { totalSize: indices.length, done: true, records: [] })
    const option = /batchSize=(\d+)/i.exec(String(req.headers['sforce-query-options'] ?? ''))
    const asked = option ? Math.min(2000, Math.max(200, Number(option[1]))) : 2000
    const batch = Math.min(asked, this.#options.maxBatchSize ?? 2000)
    const truncated = this.truncations.get(query.type)
    this.truncations.delete(query.type)
    const locator: Locator = {
      type: query.type,
      fields: query.fields,
      indices,
      served: truncated === undefined ? indices.length : Math.min(truncated, indices.length),
      batch,
    }
    this.#serial += 1
    const id = `01gFK${String(this.#serial).padStart(10, '0')}AAA`
    this.#locators.set(id, locator)
    this.#page(id, 0, version, res)
  }

  #queryMore(token: string, version: string, res: http.ServerResponse): void {
    const m = /^(.+)-(\d+)$/.exec(token)
    const locator = m ? this.#locators.get(m[1]!) : undefined
    if (!m || !locator) {
      return sendJson(res, 400, [
        { errorCode: 'INVALID_QUERY_LOCATOR', message: 'invalid query locator' },
      ])
    }
    this.#page(m[1]!, Number(m[2]), version, res)
  }

  #page(id: string, offset: number, version: string, res: http.ServerResponse): void {
    const locator = this.#locators.get(id)!
    const store = this.store(locator.type)
    const end = Math.min(offset + locator.batch, locator.served)
    const records: Rec[] = []
    for (let k = offset; k < end; k++) {
      records.push(
        store.restRecord(
          locator.indices[k]!,
          locator.fields.map((x) => x.name),
          { version },
        ),
      )
    }
    const done = end >= locator.served
    if (done) this.#locators.delete(id)
    sendJson(res, 200, {
      totalSize: locator.indices.length,
      done,
      ...(done ? {} : { nextRecordsUrl: `/services/data/v${version}/query/${id}-${end}` }),
      records,
    })
  }

  /** Indices matching a query, in (SystemModstamp, Id) order (or Id order), LIMIT applied. */
  #match(query: ParsedQuery, includeDeleted: boolean): number[] {
    const store = this.store(query.type)
    let last = -1
    let lastRec: Rec = {}
    const value = (i: number, field: FieldDef): unknown => {
      if (field.name === 'SystemModstamp') return store.stampOf(i)
      if (field.name === 'Id') return idFor(query.type, i)
      if (field.name === 'IsDeleted') return store.isDeleted(i)
      if (i !== last) {
        last = i
        lastRec = store.get(i)
      }
      return lastRec[field.name]
    }
    const pinned = pinnedIds(query.where)
    const candidates: Iterable<number> = pinned
      ? pinned
          .map((id) => store.indexOf(id))
          .filter((i): i is number => i !== undefined)
          .sort((a, b) => store.stampOf(a) - store.stampOf(b) || a - b)
      : store.ordered(lowerStampBound(query.where))
    const out: number[] = []
    const limit = query.orderById ? undefined : query.limit
    for (const i of candidates) {
      if (!includeDeleted && store.isDeleted(i)) continue
      if (query.where && !evaluate(query.where, (field) => value(i, field))) continue
      out.push(i)
      if (limit !== undefined && out.length >= limit) break
    }
    if (query.orderById) {
      out.sort((a, b) => a - b)
      if (query.limit !== undefined) out.length = Math.min(out.length, query.limit)
    }
    return out
  }

  #limits(res: http.ServerResponse): void {
    sendJson(res, 200, {
      DailyApiRequests: { Max: this.dailyMax, Remaining: Math.max(0, this.dailyMax - this.usage) },
      DailyBulkV2QueryJobs: { Max: 10_000, Remaining: 10_000 - this.jobs.size },
      DailyBulkV2QueryFileStorageMB: { Max: 1_024_000, Remaining: 1_024_000 },
    })
  }

  #describe(name: string, res: http.ServerResponse): void {
    const type = SOBJECT_TYPES.find((t) => t.toLowerCase() === name.toLowerCase())
    if (!type || this.inaccessible.has(type))
      return sendJson(res, 404, [
        { errorCode: 'NOT_FOUND', message: `The requested resource does not exist` },
      ])
    const store = this.store(type)
    sendJson(res, 200, {
      name: type,
      label: type,
      custom: false,
      queryable: true,
      updateable: true,
      fields: store.fields.map((field) => ({
        name: field.name,
        label: field.name.replace(/__c$/, '').replaceAll('_', ' '),
        type: field.type,
        custom: field.custom ?? false,
        nillable: field.name !== 'Id',
        updateable: ![
          'Id',
          'IsDeleted',
          'CreatedDate',
          'LastModifiedDate',
          'SystemModstamp',
        ].includes(field.name),
        length: field.type === 'string' ? 255 : 0,
      })),
    })
  }

  #deleted(name: string, url: URL, res: http.ServerResponse): void {
    const type = SOBJECT_TYPES.find((t) => t.toLowerCase() === name.toLowerCase())
    const start = Date.parse(normalizeOffset(url.searchParams.get('start') ?? ''))
    const end = Date.parse(normalizeOffset(url.searchParams.get('end') ?? ''))
    if (!type || Number.isNaN(start) || Number.isNaN(end)) {
      return sendJson(res, 400, [
        { errorCode: 'INVALID_REPLICATION_DATE', message: 'start and end are required' },
      ])
    }
    const store = this.store(type)
    const deletedRecords = [...store.overrides.keys()]
      .filter((i) => store.isDeleted(i) && store.stampOf(i) >= start && store.stampOf(i) <= end)
      .map((i) => ({ id: idFor(type, i), deletedDate: restDateTime(store.stampOf(i)) }))
    sendJson(res, 200, {
      deletedRecords,
      earliestDateAvailable: restDateTime(T0),
      latestDateCovered: restDateTime(Math.min(end, this.clock)),
    })
  }

  #createJob(body: string, version: string, res: http.ServerResponse): void {
    let input: Rec
    try {
      input = JSON.parse(body) as Rec
    } catch {
      return sendJson(res, 400, [{ errorCode: 'JSON_PARSER_ERROR', message: 'body is not JSON' }])
    }
    const operation = input.operation === 'queryAll' ? 'queryAll' : 'query'
    const soql = typeof input.query === 'string' ? input.query : ''
    const query = parseSoql(soql, this.#stores)
    if (this.#options.bulkUnsupported?.includes(query.type)) {
      return sendJson(res, 400, [
        {
          errorCode: 'INVALIDENTITY',
          message: `Entity '${query.type}' is not supported by the Bulk API.`,
        },
      ])
    }
    const compound = query.fields.find((field) => field.type === 'address')
    if (compound) {
      return sendJson(res, 400, [
        {
          errorCode: 'API_ERROR',
          message: `Compound field ${compound.name} is not supported by the Bulk API.`,
        },
      ])
    }
    const job: BulkJob = {
      id: this.#nextId('750'),
      type: query.type,
      query,
      operation,
      soql,
      state: 'UploadComplete',
      polls: 0,
      createdDate: this.#tick(),
      startedAt: performance.now(),
      apiVersion: version,
    }
    const failure = this.bulkFailures.findIndex(
      (x) => x.type === undefined || x.type === query.type,
    )
    if (failure >= 0) {
      job.failMessage = this.bulkFailures[failure]!.message
      this.bulkFailures.splice(failure, 1)
    }
    this.jobs.set(job.id, job)
    sendJson(res, 200, this.#jobInfo(job))
  }

  #job(method: string, id: string, body: string, res: http.ServerResponse): void {
    const job = this.jobs.get(id)
    if (!job)
      return sendJson(res, 404, [
        { errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' },
      ])
    if (method === 'DELETE') {
      this.jobs.delete(id)
      res.writeHead(204).end()
      return
    }
    if (method === 'PATCH') {
      const state = (JSON.parse(body || '{}') as Rec).state
      if (state === 'Aborted' && job.state !== 'JobComplete' && job.state !== 'Failed')
        job.state = 'Aborted'
      return sendJson(res, 200, this.#jobInfo(job))
    }
    if (method !== 'GET')
      return sendJson(res, 405, [{ errorCode: 'METHOD_NOT_ALLOWED', message: method }])
    this.#advance(job)
    sendJson(res, 200, this.#jobInfo(job))
  }

  #advance(job: BulkJob): void {
    if (job.state !== 'UploadComplete' && job.state !== 'InProgress') return
    job.polls += 1
    if (this.bulkStalled) {
      job.state = 'InProgress'
      return
    }
    const needed = this.#options.bulkPollsToComplete ?? 2
    const working = performance.now() - job.startedAt < (this.#options.bulkJobMs ?? 0)
    if (job.polls < needed || working) {
      job.state = 'InProgress'
      return
    }
    if (job.failMessage !== undefined) {
      job.state = 'Failed'
      return
    }
    job.indices = this.#match(job.query, job.operation === 'queryAll')
    const truncated = this.truncations.get(job.type)
    this.truncations.delete(job.type)
    job.served =
      truncated === undefined ? job.indices.length : Math.min(truncated, job.indices.length)
    job.state = 'JobComplete'
  }

  #jobInfo(job: BulkJob): Rec {
    return {
      id: job.id,
      operation: job.operation,
      object: job.type,
      createdById: USER_ID,
      createdDate: restDateTime(job.createdDate),
      systemModstamp: restDateTime(job.createdDate),
      state: job.state,
      concurrencyMode: 'Parallel',
      contentType: 'CSV',
      apiVersion: Number(job.apiVersion),
      jobType: 'V2Query',
      lineEnding: 'LF',
      columnDelimiter: 'COMMA',
      ...(job.state === 'JobComplete' ? { numberRecordsProcessed: job.indices?.length ?? 0 } : {}),
      ...(job.state === 'Failed'
        ? { errorMessage: job.failMessage, numberRecordsProcessed: 0 }
        : {}),
      retries: 0,
      totalProcessingTime: job.polls * 100,
    }
  }

  #results(id: string, version: string, url: URL, res: http.ServerResponse): void {
    const job = this.jobs.get(id)
    if (!job)
      return sendJson(res, 404, [
        { errorCode: 'NOT_FOUND', message: 'The requested resource does not exist' },
      ])
    if (job.apiVersion !== version) {
      return sendJson(res, 409, [
        { errorCode: 'INVALIDJOBSTATE', message: 'Results must be read with the job API version' },
      ])
    }
    if (job.state !== 'JobComplete' || !job.indices) {
      return sendJson(res, 400, [
        { errorCode: 'INVALIDJOBSTATE', message: `Job ${id} is ${job.state}` },
      ])
    }
    const locator = url.searchParams.get('locator')
    const offset = locator ? Number(Buffer.from(locator, 'base64url').toString('utf8')) : 0
    const max = Number(url.searchParams.get('maxRecords') ?? this.#options.bulkPageSize ?? 10_000)
    if (!Number.isInteger(offset) || offset < 0 || !Number.isInteger(max) || max <= 0) {
      return sendJson(res, 400, [{ errorCode: 'INVALIDLOCATOR', message: 'invalid locator' }])
    }
    const store = this.store(job.type)
    const served = job.served ?? job.indices.length
    const end = Math.min(offset + max, served)
    const fields = job.query.fields
    // Rows joined, not appended cell by cell: a page is megabytes, and a string built by `+=`
    // is a tree of millions of pieces that costs as much again to flatten when it is sent.
    const lines = [fields.map((field) => field.name).join(',')]
    const cells: string[] = []
    for (let k = offset; k < end; k++) {
      const rec = store.get(job.indices[k]!)
      for (let f = 0; f < fields.length; f++) cells[f] = csvCell(fields[f]!, rec[fields[f]!.name])
      lines.push(cells.join(','))
    }
    const body = `${lines.join('\n')}\n`
    let announced: number | undefined = end - offset
    if (this.miscount?.type === job.type && this.miscount.after-- === 0) {
      const { by } = this.miscount
      announced = by === 'no count' ? undefined : announced + by
      this.miscount = undefined
    }
    res.writeHead(200, {
      'content-type': 'text/csv',
      'Sforce-Locator': end < served ? Buffer.from(String(end)).toString('base64url') : 'null',
      ...(announced === undefined ? {} : { 'Sforce-NumberOfRecords': String(announced) }),
    })
    res.end(body)
  }

  #collections(body: string, res: http.ServerResponse): void {
    const input = JSON.parse(body || '{}') as { allOrNone?: boolean; records?: Rec[] }
    const records = input.records ?? []
    const entry = this.requests.at(-1)
    if (entry && Array.isArray(records)) entry.records = records.length
    if (!Array.isArray(records) || records.length === 0) {
      return sendJson(res, 400, [{ errorCode: 'INVALID_FIELD', message: 'records is required' }])
    }
    if (records.length > 200) {
      return sendJson(res, 400, [
        {
          errorCode: 'EXCEEDED_ID_LIMIT',
          message: 'record limit reached. cannot submit more than 200 records into this call',
        },
      ])
    }
    const plans = records.map((record) => this.#planSave(record))
    const failed = plans.some((plan) => 'error' in plan)
    const results = plans.map((plan) => {
      if ('error' in plan) return { id: plan.id, success: false, errors: [plan.error] }
      if (input.allOrNone && failed) {
        return {
          id: plan.id,
          success: false,
          errors: [
            {
              statusCode: 'ALL_OR_NONE_OPERATION_ROLLED_BACK',
              message:
                'Record rolled back because not all records were valid and the request was using AllOrNone header',
              fields: [],
            },
          ],
        }
      }
      const now = this.#tick()
      plan.store.patch(plan.index, { ...plan.fields, LastModifiedDate: now, SystemModstamp: now })
      return { id: plan.id, success: true, errors: [] }
    })
    sendJson(res, 200, results)
  }

  #planSave(
    record: Rec,
  ):
    | { id: string | null; error: FakeSaveError & { fields: string[] } }
    | { id: string; store: ObjectStore; index: number; fields: Rec } {
    const { attributes, id, Id, ...fields } = record
    const recordId = typeof id === 'string' ? id : typeof Id === 'string' ? Id : null
    const typeName = (attributes as { type?: unknown } | undefined)?.type
    const type = SOBJECT_TYPES.find((t) => t === typeName)
    if (!type)
      return {
        id: recordId,
        error: { statusCode: 'INVALID_TYPE', message: 'attributes.type is required', fields: [] },
      }
    const store = this.store(type)
    const index = recordId === null ? undefined : store.indexOf(recordId)
    if (recordId === null || index === undefined) {
      return {
        id: recordId,
        error: {
          statusCode: 'MALFORMED_ID',
          message: `${type} ID: id value of incorrect type: ${recordId ?? ''}`,
          fields: ['Id'],
        },
      }
    }
    const injected = this.writebackFailures.get(recordId)
    if (injected) return { id: recordId, error: { ...injected, fields: injected.fields ?? [] } }
    if (store.isDeleted(index)) {
      return {
        id: recordId,
        error: { statusCode: 'ENTITY_IS_DELETED', message: 'entity is deleted', fields: [] },
      }
    }
    for (const name of Object.keys(fields)) {
      const def = store.byName.get(name.toLowerCase())
      if (!def) {
        return {
          id: recordId,
          error: {
            statusCode: 'INVALID_FIELD',
            message: `No such column '${name}' on sobject of type ${type}`,
            fields: [name],
          },
        }
      }
    }
    return { id: recordId, store, index, fields: toInternal(store, fields) }
  }
}

/** The `overrides` option's fields for record `index`: canonical names, values untouched. */
function verbatimFields(store: ObjectStore, index: number, fields: Rec): Rec {
  if (!Number.isInteger(index) || index < 0 || index >= store.count) {
    throw new Error(`The fake has no generated ${store.type} number ${index} to override.`)
  }
  const out: Rec = {}
  for (const [name, value] of Object.entries(fields)) {
    const def = store.byName.get(name.toLowerCase())
    if (!def) throw new Error(`${store.type} has no field ${name}`)
    if (['Id', 'IsDeleted', 'SystemModstamp'].includes(def.name)) {
      throw new Error(`overrides cannot set ${store.type}.${def.name}`)
    }
    out[def.name] = value
  }
  return out
}

/** Field values as the store keeps them: datetimes as epoch ms, canonical field names. */
function toInternal(store: ObjectStore, fields: Rec): Rec {
  const out: Rec = {}
  for (const [name, value] of Object.entries(fields)) {
    const def = store.byName.get(name.toLowerCase())
    if (!def) throw new Error(`${store.type} has no field ${name}`)
    out[def.name] =
      def.type === 'datetime' && typeof value === 'string'
        ? Date.parse(normalizeOffset(value))
        : value
  }
  return out
}

function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json;charset=UTF-8' })
  res.end(JSON.stringify(body))
}

async function readBody(req: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
