import { createHash } from 'node:crypto'
import { isDeepStrictEqual } from 'node:util'
import { sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { accounts, activities, connectors, people, quarantine } from '../../../db/schema/index.js'
import { withTenant } from '../../../db/tenant.js'
import '../../../src-agent/connectors/salesforce/index.js'
import { runSync, type SyncSummary } from '../../../src-agent/pipeline/run-sync.js'
import { connect } from '../../../src-agent/services/connections.js'
import {
  startSalesforceFake,
  type SalesforceFake,
  type SObjectType,
} from '../../fakes/salesforce.js'
import { agentFixture, type AgentFixture } from '../../helpers/agent.js'
import { seedTenant } from '../../helpers/db.js'

/**
 * "One odd record stops a sync for good": the records real orgs hold, served among thousands of
 * clean ones over REST and over Bulk API 2.0 CSV. Each dirty record's outcome is written down
 * below from the documented rules (README, "One page of a sync"), not read from the code:
 *
 * - Default mappings (connectors/salesforce/map.ts): names, title, phone and email are trimmed;
 *   a Contact's account is its AccountId, a Lead's its ConvertedAccountId, a Task's time its
 *   CompletedDateTime, else ActivityDate, else CreatedDate.
 * - Quality: emails are trimmed and lower-cased and must be valid addresses (none is longer than
 *   254 characters, RFC 5321); websites become a bare host (`https://www.Acme.com/pricing` →
 *   `acme.com`; no domain is longer than 253 characters, RFC 1035); numbers are read from numbers
 *   or numeric text ("1,200"); dates must be dates (2025-02-30 is none). Empty text and null are
 *   absent.
 * - Text Postgres cannot store is cleaned: NUL removed, a lone surrogate becomes U+FFFD, in every
 *   field and in the stored raw payload; every other text (control characters, emoji, RTL and
 *   combining marks, quotes, commas, newlines, SQL-looking text, 40,000 characters) is stored
 *   byte for byte.
 * - Refused, naming the field: a count above 2,147,483,647, below zero or not whole; a date
 *   outside the years 1 to 9999 or that is no date; an empty required name (an Account's);
 *   a value that is no number, email address or domain.
 * - References are not checked: an id pointing nowhere is stored as it is.
 */

const COUNTS = { Account: 1_000, Contact: 3_000, Lead: 200, Task: 300, Opportunity: 0, Event: 0 }
const OBJECTS = ['Account', 'Contact', 'Lead', 'Task'] as const
type SyncedObject = (typeof OBJECTS)[number]
const ENTITY = { Account: 'account', Contact: 'person', Lead: 'person', Task: 'activity' } as const
const ID_PREFIX = { Account: '001', Contact: '003', Lead: '00Q', Task: '00T' } as const

/**
 * Deterministic text of exactly `length` UTF-16 units drawn from `pieces` (none split), starting
 * with "a" and ending with "z" so that trimming leaves it whole.
 */
function longText(length: number, pieces: readonly string[], seed: number): string {
  let state = seed
  let text = 'a'
  for (;;) {
    state = (state * 1_103_515_245 + 12_345) % 2_147_483_648
    const piece = pieces[state % pieces.length]!
    if (text.length + piece.length > length - 1) break
    text += piece
  }
  return text.padEnd(length, 'z')
}
const ALNUM = [...'abcdefghijklmnopqrstuvwxyz0123456789']
/** 40,000 characters of valid text: everything a naive CSV writer or reader trips on. */
const TEXT_40K = longText(
  40_000,
  [
    ...ALNUM,
    ' ',
    ',',
    '"',
    '""',
    '\n',
    '\r\n',
    "'",
    ';',
    '--',
    'é',
    'e\u0301',
    '😀',
    '👩🏽‍💻',
    'مُحَمَّد',
    'שָׁלוֹם',
    '\t',
  ],
  7,
)
const SUBJECT_40K = longText(40_000, [...ALNUM, ' ', '"', ',', '\n', '🇮🇱', 'ع'], 11)
/** A well-formed address shape 40,000 characters long (far past an address's 254). */
const EMAIL_40K = `${longText(40_000 - '@example.com'.length, ALNUM, 3)}@example.com`
/** A host of 50-character labels, in a website exactly 40,000 characters long. */
const HOST_40K = `${Array.from({ length: 800 }, (_, i) => longText(50, ALNUM, i + 1))
  .join('.')
  .slice(0, 40_000 - 'https://'.length - '.example.com/'.length)}.example.com`
const CONTROL =
  'Bell\u0007 Esc\u001b[31mred\u001b[0m tab\tVT\u000bFF\u000cDEL\u007fNEL\u0085LS\u2028PS\u2029end'
const ARABIC = 'مُحَمَّد عَلِيّ'
const HEBREW = 'שָׁלוֹם \u200fמְנַהֵל\u200f כֹּהֵן'
const EMOJI = 'Zoë 👩🏽‍💻 👨‍👩‍👧 🇮🇱 e\u0301'
const CSV_NAME = 'Smith, "Jr."'
const CSV_QUOTED = '"Smith, ""Jr."""'
const CSV_TITLE = 'Head of\nSales\r\nEMEA, "North"\rand a lone CR'
const SQL_NAME = "Robert'); DROP TABLE people;--"
const SQL_TITLE = "1' OR '1'='1'; DELETE FROM accounts WHERE ''='"
const CSV_SUBJECT = '=HYPERLINK("http://x.test/?a=1,b=2","click"), then\r\nmore "quoted" text'

/** The record's landed columns (name → value), or the canonical field its quarantine names. */
type Outcome = { lands: Record<string, unknown>; exact?: string[] } | { quarantined: string }

interface Dirty {
  object: SyncedObject
  name: string
  /** Salesforce fields served in place of the generated ones, exactly as given. */
  served: Record<string, unknown>
  /**
   * lands: the canonical columns the served fields feed, each with its expected stored value
   * (`properties.<key>` for one key of an activity's properties); the other columns keep the
   * generated record's. exact: served fields whose text must land byte for byte.
   */
  outcome: Outcome
}

const dirty: Dirty[] = [
  // --- Contacts ---
  {
    object: 'Contact',
    name: 'email with spaces and mixed case',
    served: { Email: '  John.DOE@Example.COM ' },
    outcome: { lands: { email: 'john.doe@example.com' } },
  },
  {
    object: 'Contact',
    name: 'email that is not an address',
    served: { Email: 'not-an-email' },
    outcome: { quarantined: 'email' },
  },
  {
    object: 'Contact',
    name: 'email without a top-level domain',
    served: { Email: 'a@b' },
    outcome: { quarantined: 'email' },
  },
  {
    object: 'Contact',
    name: 'email with a NUL',
    served: { Email: 'Nul\u0000.Byte@Example.com' },
    outcome: { lands: { email: 'nul.byte@example.com' } },
  },
  {
    object: 'Contact',
    name: 'email 40,000 characters long',
    served: { Email: EMAIL_40K },
    outcome: { quarantined: 'email' },
  },
  {
    object: 'Contact',
    name: 'NUL in first name',
    served: { FirstName: 'Nul\u0000Name' },
    outcome: { lands: { firstName: 'NulName' } },
  },
  {
    object: 'Contact',
    name: 'other control characters',
    served: { Title: CONTROL },
    outcome: { lands: { title: CONTROL }, exact: ['Title'] },
  },
  {
    object: 'Contact',
    name: 'lone surrogates',
    served: { FirstName: 'High\ud800', LastName: '\udfffLow', Title: 'Reversed \udc00\ud800 pair' },
    outcome: {
      lands: {
        firstName: 'High\ufffd',
        lastName: '\ufffdLow',
        title: 'Reversed \ufffd\ufffd pair',
      },
    },
  },
  {
    object: 'Contact',
    name: 'emoji, RTL scripts and combining marks',
    served: { FirstName: EMOJI, LastName: ARABIC, Title: HEBREW },
    outcome: {
      lands: { firstName: EMOJI, lastName: ARABIC, title: HEBREW },
      exact: ['FirstName', 'LastName', 'Title'],
    },
  },
  {
    object: 'Contact',
    name: 'quotes, commas, newlines and CRLF',
    served: { FirstName: CSV_QUOTED, LastName: CSV_NAME, Title: CSV_TITLE },
    outcome: {
      lands: { firstName: CSV_QUOTED, lastName: CSV_NAME, title: CSV_TITLE },
      exact: ['FirstName', 'LastName', 'Title'],
    },
  },
  {
    object: 'Contact',
    name: 'SQL-looking text',
    served: { LastName: SQL_NAME, Title: SQL_TITLE, Phone: '555-CALL-NOW ext. 7' },
    outcome: {
      lands: { lastName: SQL_NAME, title: SQL_TITLE, phone: '555-CALL-NOW ext. 7' },
      exact: ['LastName', 'Title', 'Phone'],
    },
  },
  {
    object: 'Contact',
    name: 'title 40,000 characters long',
    served: { Title: TEXT_40K },
    outcome: { lands: { title: TEXT_40K }, exact: ['Title'] },
  },
  {
    object: 'Contact',
    name: 'empty last name',
    served: { LastName: '' },
    outcome: { lands: { lastName: null } },
  },
  {
    object: 'Contact',
    name: 'null last name',
    served: { LastName: null },
    outcome: { lands: { lastName: null } },
  },
  {
    object: 'Contact',
    name: 'blank names',
    served: { FirstName: '   ', LastName: '\r\n' },
    outcome: { lands: { firstName: null, lastName: null } },
  },
  {
    object: 'Contact',
    name: 'padded first name',
    served: { FirstName: '  Ann  ' },
    outcome: { lands: { firstName: 'Ann' } },
  },
  {
    object: 'Contact',
    name: 'account that does not exist',
    served: { AccountId: '001FK9999999999AAA' },
    outcome: { lands: { accountExternalId: '001FK9999999999AAA' } },
  },
  // --- Leads ---
  {
    object: 'Lead',
    name: 'email with tab, CRLF and mixed case',
    served: { Email: '\tMiXeD.Case@Example.ORG\r\n' },
    outcome: { lands: { email: 'mixed.case@example.org' } },
  },
  {
    object: 'Lead',
    name: 'email that is not an address',
    served: { Email: 'lead at example dot org' },
    outcome: { quarantined: 'email' },
  },
  {
    object: 'Lead',
    name: 'converted to an account that does not exist',
    served: { IsConverted: true, ConvertedAccountId: '001FK8888888888AAA' },
    outcome: { lands: { accountExternalId: '001FK8888888888AAA' } },
  },
  {
    object: 'Lead',
    name: 'null names',
    served: { FirstName: null, LastName: null },
    outcome: { lands: { firstName: null, lastName: null } },
  },
  {
    object: 'Lead',
    name: 'RTL names',
    served: { FirstName: 'عَلِيّ', LastName: 'כֹּהֵן' },
    outcome: { lands: { firstName: 'عَلِيّ', lastName: 'כֹּהֵן' }, exact: ['FirstName', 'LastName'] },
  },
  // --- Accounts ---
  {
    object: 'Account',
    name: 'empty name',
    served: { Name: '' },
    outcome: { quarantined: 'name' },
  },
  {
    object: 'Account',
    name: 'null name',
    served: { Name: null },
    outcome: { quarantined: 'name' },
  },
  {
    object: 'Account',
    name: 'name of blanks and a NUL',
    served: { Name: ' \u0000 ' },
    outcome: { quarantined: 'name' },
  },
  {
    object: 'Account',
    name: 'RTL name',
    served: { Name: 'شركة الأمل للتقنية' },
    outcome: { lands: { name: 'شركة الأمل للتقنية' }, exact: ['Name'] },
  },
  {
    object: 'Account',
    name: 'name with quotes, comma and newline',
    served: { Name: 'Acme, Inc. "The Best"\nDivision' },
    outcome: { lands: { name: 'Acme, Inc. "The Best"\nDivision' }, exact: ['Name'] },
  },
  {
    object: 'Account',
    name: 'SQL-looking industry',
    served: { Industry: "'; DELETE FROM accounts WHERE '1'='1" },
    outcome: { lands: { industry: "'; DELETE FROM accounts WHERE '1'='1" }, exact: ['Industry'] },
  },
  {
    object: 'Account',
    name: 'description 40,000 characters long (kept in the raw payload)',
    served: { Description: TEXT_40K },
    outcome: { lands: {}, exact: ['Description'] },
  },
  {
    object: 'Account',
    name: 'a trillion employees',
    served: { NumberOfEmployees: 1e12 },
    outcome: { quarantined: 'employeeCount' },
  },
  {
    object: 'Account',
    name: 'negative employees',
    served: { NumberOfEmployees: -5 },
    outcome: { quarantined: 'employeeCount' },
  },
  {
    object: 'Account',
    name: 'employees one past the integer column',
    served: { NumberOfEmployees: 2_147_483_648 },
    outcome: { quarantined: 'employeeCount' },
  },
  {
    object: 'Account',
    name: 'fractional employees',
    served: { NumberOfEmployees: 12.5 },
    outcome: { quarantined: 'employeeCount' },
  },
  {
    object: 'Account',
    name: 'employees at the integer maximum',
    served: { NumberOfEmployees: 2_147_483_647 },
    outcome: { lands: { employeeCount: 2_147_483_647 } },
  },
  {
    object: 'Account',
    name: 'employees as grouped text',
    served: { NumberOfEmployees: '1,200' },
    outcome: { lands: { employeeCount: 1200 } },
  },
  {
    object: 'Account',
    name: 'revenue of 1e300',
    served: { AnnualRevenue: 1e300 },
    outcome: { lands: { annualRevenue: 1e300 } },
  },
  {
    object: 'Account',
    name: 'revenue NaN',
    served: { AnnualRevenue: 'NaN' },
    outcome: { quarantined: 'annualRevenue' },
  },
  {
    object: 'Account',
    name: 'revenue Infinity',
    served: { AnnualRevenue: 'Infinity' },
    outcome: { quarantined: 'annualRevenue' },
  },
  {
    object: 'Account',
    name: 'website with mixed case, www, path and query',
    served: { Website: 'https://WWW.Dirty-Co.EXAMPLE/pricing?x=1,2' },
    outcome: { lands: { domain: 'dirty-co.example' } },
  },
  {
    object: 'Account',
    name: 'website that is no URL',
    served: { Website: 'not a url' },
    outcome: { quarantined: 'domain' },
  },
  {
    object: 'Account',
    name: 'website 40,000 characters long',
    served: { Website: `https://${HOST_40K}/` },
    outcome: { quarantined: 'domain' },
  },
  // --- Tasks ---
  {
    object: 'Task',
    name: 'completed in the year 1',
    served: { CompletedDateTime: '0001-01-01T00:00:00.000+0000' },
    outcome: { lands: { occurredAt: '0001-01-01T00:00:00.000Z' } },
  },
  {
    object: 'Task',
    name: 'completed at the end of 9999',
    served: { CompletedDateTime: '9999-12-31T23:59:59.999+0000' },
    outcome: { lands: { occurredAt: '9999-12-31T23:59:59.999Z' } },
  },
  {
    object: 'Task',
    name: 'completed in the year 0',
    served: { CompletedDateTime: '0000-01-01T00:00:00.000+0000' },
    outcome: { quarantined: 'occurredAt' },
  },
  {
    object: 'Task',
    name: 'completed in the year 10000',
    served: { CompletedDateTime: '10000-01-01T00:00:00.000+0000' },
    outcome: { quarantined: 'occurredAt' },
  },
  {
    object: 'Task',
    name: 'completed with a -0800 offset on a DST night',
    served: { CompletedDateTime: '2025-03-09T02:30:00.000-0800' },
    outcome: { lands: { occurredAt: '2025-03-09T10:30:00.000Z' } },
  },
  {
    object: 'Task',
    name: 'activity date that is no date',
    served: { CompletedDateTime: null, ActivityDate: 'not a date' },
    outcome: { quarantined: 'occurredAt' },
  },
  {
    object: 'Task',
    name: 'activity date February 30',
    served: { CompletedDateTime: null, ActivityDate: '2025-02-30' },
    outcome: { quarantined: 'occurredAt' },
  },
  {
    object: 'Task',
    name: 'activity date before 1970',
    served: { CompletedDateTime: null, ActivityDate: '1969-12-31' },
    outcome: { lands: { occurredAt: '1969-12-31T00:00:00.000Z' } },
  },
  {
    object: 'Task',
    name: 'SQL-looking subject with emoji and Arabic',
    served: { Subject: "Robert'); DROP TABLE activities;-- 😀 مرحبا" },
    outcome: {
      lands: { 'properties.subject': "Robert'); DROP TABLE activities;-- 😀 مرحبا" },
      exact: ['Subject'],
    },
  },
  {
    object: 'Task',
    name: 'subject with a CSV-injection formula, quotes and CRLF',
    served: { Subject: CSV_SUBJECT },
    outcome: { lands: { 'properties.subject': CSV_SUBJECT }, exact: ['Subject'] },
  },
  {
    object: 'Task',
    name: 'subject 40,000 characters long',
    served: { Subject: SUBJECT_40K },
    outcome: { lands: { 'properties.subject': SUBJECT_40K }, exact: ['Subject'] },
  },
  {
    object: 'Task',
    name: 'subject with a NUL and a lone surrogate',
    served: { Subject: 'Sub\u0000ject \ud83d' },
    outcome: { lands: { 'properties.subject': 'Subject \ufffd' } },
  },
  {
    object: 'Task',
    name: 'person that does not exist',
    served: { WhoId: '003FK7777777777AAA' },
    outcome: { lands: { personExternalId: '003FK7777777777AAA' } },
  },
]

/** Which canonical columns each Salesforce field feeds (default mappings, map.ts). */
const FEEDS: Record<SyncedObject, Record<string, string[]>> = {
  Contact: {
    Email: ['email'],
    FirstName: ['firstName'],
    LastName: ['lastName'],
    Title: ['title'],
    Phone: ['phone'],
    AccountId: ['accountExternalId'],
  },
  Lead: {
    Email: ['email'],
    FirstName: ['firstName'],
    LastName: ['lastName'],
    Title: ['title'],
    Phone: ['phone'],
    ConvertedAccountId: ['accountExternalId'],
    IsConverted: [],
  },
  Account: {
    Name: ['name'],
    Website: ['domain'],
    Industry: ['industry'],
    NumberOfEmployees: ['employeeCount'],
    AnnualRevenue: ['annualRevenue'],
    Description: [],
  },
  Task: {
    CompletedDateTime: ['occurredAt'],
    ActivityDate: ['occurredAt'],
    Subject: ['properties.subject'],
    WhoId: ['personExternalId'],
  },
}

/** Dirty records spread evenly through each object's generated ones, by index. */
const placed = OBJECTS.flatMap((object) => {
  const own = dirty.filter((d) => d.object === object)
  return own.map((d, k) => ({ ...d, index: Math.floor(((k + 0.5) * COUNTS[object]) / own.length) }))
})
type Placed = (typeof placed)[number]

type Row = Record<string, unknown>

/** A Salesforce datetime (`…+0000`) or date as the instant it names, in ISO-8601 UTC. */
function instant(text: unknown): string {
  const iso = String(text).replace(/([+-]\d{2})(\d{2})$/, '$1:$2')
  return new Date(/^\d{4}-\d{2}-\d{2}$/.test(iso) ? `${iso}T00:00:00Z` : iso).toISOString()
}

/** A Task's channel (map.ts): its subtype Email/ListEmail/Call, else its Type picklist. */
function taskChannel(subtype: unknown, type: unknown): string | null {
  if (subtype === 'Email' || subtype === 'ListEmail') return 'email'
  if (subtype === 'Call') return 'call'
  const byType: Record<string, string> = { Email: 'email', Call: 'call', Meeting: 'meeting' }
  return typeof type === 'string' ? (byType[type] ?? null) : null
}

/** The canonical row a clean served record lands as, by the documented rules. */
function cleanRow(object: SyncedObject, rec: Row): Row {
  const text = (value: unknown) => (typeof value === 'string' ? value : null)
  switch (object) {
    case 'Contact':
    case 'Lead':
      return {
        email: String(rec.Email).trim().toLowerCase(),
        firstName: text(rec.FirstName),
        lastName: text(rec.LastName),
        title: text(rec.Title),
        phone: text(rec.Phone),
        accountExternalId: text(object === 'Contact' ? rec.AccountId : rec.ConvertedAccountId),
      }
    case 'Account':
      return {
        name: String(rec.Name).trim(),
        domain: new URL(String(rec.Website)).hostname.replace(/^www\./, ''),
        industry: text(rec.Industry),
        employeeCount: rec.NumberOfEmployees,
        annualRevenue: rec.AnnualRevenue,
      }
    case 'Task':
      return {
        type: 'task',
        channel: taskChannel(rec.TaskSubtype, rec.Type),
        occurredAt: instant(rec.CompletedDateTime ?? rec.ActivityDate ?? rec.CreatedDate),
        personExternalId: text(rec.WhoId),
        accountExternalId: text(rec.AccountId),
        properties: {
          subject: rec.Subject,
          status: rec.Status,
          isClosed: rec.IsClosed,
          accountExternalId: rec.AccountId,
        },
      }
  }
}

/** The row a landing dirty record must have: the generated columns, the table's on top. */
function dirtyRow(d: Placed, served: Row, lands: Record<string, unknown>): Row {
  const row = cleanRow(d.object, served)
  for (const [column, value] of Object.entries(lands)) {
    if (column.startsWith('properties.')) {
      row.properties = { ...(row.properties as Row), [column.slice(11)]: value }
    } else row[column] = value
  }
  return row
}

/** Text as the README says it is stored: NUL removed, a lone surrogate replaced by U+FFFD. */
function storedText(text: string): string {
  return text
    .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd')
    .replaceAll('\0', '')
}

/** "same", or where two texts first differ (never the whole of a 40,000-character text). */
function firstDifference(actual: unknown, expected: string): string {
  if (actual === expected) return 'same'
  if (typeof actual !== 'string') return `not text: ${typeof actual}`
  let i = 0
  while (i < actual.length && actual[i] === expected[i]) i++
  const show = (s: string) => JSON.stringify(s.slice(Math.max(0, i - 10), i + 10))
  return `differ at ${i} of ${actual.length}/${expected.length}: ${show(actual)} vs ${show(expected)}`
}

/** Long strings cut, so a failure message stays readable. */
function brief(value: unknown): unknown {
  if (value === undefined) return undefined
  return JSON.parse(
    JSON.stringify(value, (_key, v: unknown) =>
      typeof v === 'string' && v.length > 80 ? `${v.slice(0, 60)}… (${v.length} chars)` : v,
    ),
  ) as unknown
}

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex')

/** Where each column (and the raw payload) of one object lives, for byte checks in Postgres. */
const EXACT_COLUMN: Record<SyncedObject, Record<string, string | null>> = {
  Contact: { FirstName: 'first_name', LastName: 'last_name', Title: 'title', Phone: 'phone' },
  Lead: { FirstName: 'first_name', LastName: 'last_name' },
  Account: { Name: 'name', Industry: 'industry', Description: null },
  Task: { Subject: "properties->>'subject'" },
}
const TABLE = { Account: 'accounts', Contact: 'people', Lead: 'people', Task: 'activities' }

describe('the dirty-data table', () => {
  it('says, for every served field that feeds a column, what that column holds', () => {
    for (const d of dirty) {
      const feeds = FEEDS[d.object]
      for (const field of Object.keys(d.served)) {
        expect(feeds[field], `${d.object} ${field} is in FEEDS`).toBeDefined()
        if (!('lands' in d.outcome)) continue
        for (const column of feeds[field]!) {
          expect(Object.keys(d.outcome.lands), `${d.object} "${d.name}"`).toContain(column)
        }
      }
      const exact = 'lands' in d.outcome ? (d.outcome.exact ?? []) : []
      for (const field of exact) expect(EXACT_COLUMN[d.object]).toHaveProperty(field)
    }
    expect(new Set(placed.map((d) => `${d.object}:${d.index}`)).size).toBe(dirty.length)
    // The long values are what they say: 40,000 characters of well-formed text.
    for (const text of [TEXT_40K, SUBJECT_40K, EMAIL_40K, `https://${HOST_40K}/`]) {
      expect(text).toHaveLength(40_000)
      expect(storedText(text)).toBe(text)
    }
  })
})

describe.each([
  ['REST', 1_000_000],
  ['Bulk API 2.0', 1],
])('dirty Salesforce records among thousands of clean ones, over %s', (transport, bulkMin) => {
  let agent: AgentFixture
  let fake: SalesforceFake
  let tenantId: string
  let summary: SyncSummary
  let jobs: number
  /** The tables after the first sync. */
  let t: Awaited<ReturnType<typeof tables>>

  const overrides: Partial<Record<SObjectType, Record<number, Row>>> = {}
  for (const d of placed) (overrides[d.object] ??= {})[d.index] = d.served

  beforeAll(async () => {
    agent = agentFixture()
    fake = await startSalesforceFake({ counts: COUNTS, overrides })
    tenantId = await seedTenant(agent.handle)
    await connect(
      { db: agent.handle.db, registry: agent.registry, keyring: agent.keyring, log: agent.log },
      {
        tenantId,
        connectorType: 'salesforce',
        configJson: { ...fake.connectConfig(), bulkPollIntervalMs: 5, bulkMinRecords: bulkMin },
        userId: agent.userId,
      },
    )
    summary = await runSync(agent, { tenantId, connectorType: 'salesforce', pageSize: 500 })
    jobs = fake.requests.filter((r) => r.method === 'POST' && r.path.endsWith('/jobs/query')).length
    t = await tables()
  })
  afterAll(async () => {
    await fake?.close()
    await agent?.close()
  })

  const id = (object: SyncedObject, index: number) => fake.idOf(object, index)
  const quarantines = placed.filter((d) => 'quarantined' in d.outcome)

  const tables = () =>
    withTenant(agent.handle.db, tenantId, async (tx) => ({
      people: await tx.select().from(people),
      accounts: await tx.select().from(accounts),
      activities: await tx.select().from(activities),
      // occurred_at as Postgres holds it: drizzle reads years 1 to 99 back as 1901 to 2000.
      occurredAt: new Map(
        (
          await tx.execute<{ external_id: string; at: string }>(
            sql`select external_id, to_char(occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as at from activities`,
          )
        ).rows.map((r) => [r.external_id, r.at]),
      ),
      quarantine: await tx.select().from(quarantine),
      connector: (await tx.select().from(connectors))[0]!,
    }))

  /** Each landed row's canonical columns, by external id. */
  function landedRows(): Map<string, Row> {
    const rows = new Map<string, Row>()
    for (const p of t.people) {
      const { email, firstName, lastName, title, phone, accountExternalId } = p
      rows.set(p.externalId, { email, firstName, lastName, title, phone, accountExternalId })
    }
    for (const a of t.accounts) {
      const { name, domain, industry, employeeCount, annualRevenue } = a
      rows.set(a.externalId, { name, domain, industry, employeeCount, annualRevenue })
    }
    for (const a of t.activities) {
      const { type, channel, personExternalId, accountExternalId, properties } = a
      const occurredAt = t.occurredAt.get(a.externalId)
      rows.set(a.externalId, {
        type,
        channel,
        occurredAt,
        personExternalId,
        accountExternalId,
        properties,
      })
    }
    return rows
  }

  it(`succeeds over ${transport}, quarantining only the table's refusals`, () => {
    expect(summary.error, 'the run failed').toBeUndefined()
    expect(summary).toMatchObject({
      status: 'succeeded',
      created: 4_500 - quarantines.length,
      updated: 0,
      deleted: 0,
      errors: quarantines.length,
    })
    // Bulk reads every object that has records (four jobs); REST none.
    expect(jobs).toBe(transport === 'REST' ? 0 : OBJECTS.length)
    expect(t.connector).toMatchObject({ status: 'connected', lastSyncError: null })
  })

  it('loses no record: landed + quarantined = served, per object', () => {
    const landed = [...t.people, ...t.accounts, ...t.activities].map((r) => r.externalId)
    const held = t.quarantine.map((q) => q.externalId ?? '(none)')
    for (const object of OBJECTS) {
      const served = Array.from({ length: COUNTS[object] }, (_, i) => id(object, i)).sort()
      const own = (ids: string[]) => ids.filter((x) => x.startsWith(ID_PREFIX[object])).sort()
      const wanted = quarantines.filter((d) => d.object === object).map((d) => id(object, d.index))
      expect(own(held), `${object} quarantined`).toEqual(wanted.sort())
      expect(own(landed).length + own(held).length, `${object} landed + quarantined`).toBe(
        COUNTS[object],
      )
      expect([...own(landed), ...own(held)].sort(), `${object} ids`).toEqual(served)
    }
    expect(held).toHaveLength(quarantines.length)
  })

  it('lands every clean record with exact values', () => {
    const rows = landedRows()
    const dirtyIds = new Set(placed.map((d) => id(d.object, d.index)))
    const wrong: unknown[] = []
    let checked = 0
    for (const object of OBJECTS) {
      for (let i = 0; i < COUNTS[object]; i++) {
        const externalId = id(object, i)
        if (dirtyIds.has(externalId)) continue
        const expected = cleanRow(object, fake.record(object, externalId)!)
        const actual = rows.get(externalId)
        checked++
        if (!isDeepStrictEqual(actual, expected)) wrong.push({ externalId, actual, expected })
      }
    }
    expect(checked).toBe(4_500 - dirty.length)
    expect(brief(wrong.slice(0, 3)), `${wrong.length} clean records differ`).toEqual([])
  })

  it.each(placed.map((d) => [`${d.object} "${d.name}"`, d] as const))(
    '%s: lands cleaned or is quarantined naming the field',
    async (_label, d) => {
      const externalId = id(d.object, d.index)
      const served = fake.record(d.object, externalId)!
      const entityType = ENTITY[d.object]

      // The raw payload keeps every served text, cleaned as the README says.
      const checkRaw = (raw: Row) => {
        expect(raw.Id).toBe(externalId)
        for (const [field, value] of Object.entries(d.served)) {
          // Bulk sends an empty cell for both null and '', so only non-empty text is compared.
          if (typeof value !== 'string' || value === '') continue
          expect(firstDifference(raw[field], storedText(value)), `raw ${field}`).toBe('same')
        }
      }

      if ('quarantined' in d.outcome) {
        const field = d.outcome.quarantined
        expect(brief(landedRows().get(externalId)), 'landed instead').toBeUndefined()
        const rows = t.quarantine.filter((q) => q.externalId === externalId)
        expect(rows).toHaveLength(1)
        const [row] = rows
        expect(row!.entityType).toBe(entityType)
        expect(row!.reason.startsWith(`${field}: `), row!.reason).toBe(true)
        expect(row!.reason).toContain(`"${field}"`)
        checkRaw(row!.rawPayload)
        return
      }

      const { lands, exact = [] } = d.outcome
      expect(t.quarantine.filter((q) => q.externalId === externalId)).toEqual([])
      const actual = landedRows().get(externalId)
      const expected = dirtyRow(d, served, lands)
      expect(brief(actual)).toEqual(brief(expected))
      expect(isDeepStrictEqual(actual, expected), 'exact row').toBe(true)
      const stored = [...t.people, ...t.accounts, ...t.activities].find(
        (r) => r.externalId === externalId,
      )!
      checkRaw(stored.sourceData)

      // Valid text lands byte for byte: its UTF-8 in Postgres hashes as the served text's.
      for (const field of exact) {
        const value = d.served[field] as string
        const column = EXACT_COLUMN[d.object][field]
        const hashed = await withTenant(agent.handle.db, tenantId, (tx) =>
          tx.execute<{ column: string | null; raw: string }>(sql`
            select ${column === null ? sql`null` : sql.raw(`encode(sha256(convert_to(${column}, 'UTF8')), 'hex')`)} as column,
              ${sql.raw(`encode(sha256(convert_to(source_data->>'${field}', 'UTF8')), 'hex')`)} as raw
            from ${sql.raw(TABLE[d.object])} where external_id = ${externalId}`),
        )
        expect(hashed.rows).toEqual([
          { column: column === null ? null : sha256(value), raw: sha256(value) },
        ])
      }
    },
  )

  it('a second full pass rewrites nothing and quarantines the same records again', async () => {
    const again = await runSync(agent, {
      tenantId,
      connectorType: 'salesforce',
      pageSize: 500,
      full: true,
    })
    expect(again).toMatchObject({
      status: 'succeeded',
      created: 0,
      updated: 0,
      errors: quarantines.length,
    })
  })
})
