import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { asc, eq } from 'drizzle-orm'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { DbHandle } from '../../../db/client.js'
import { auditLog, writebackConfigs, writebackQueue } from '../../../db/schema/index.js'
import { withTenant } from '../../../db/tenant.js'
import { startSalesforceFake, type SalesforceFake } from '../../fakes/salesforce.js'
import { TEST_KEY_HEX } from '../../helpers/agent.js'
import { runCli, stderrLines, type CliResult } from '../../helpers/cli.js'
import { agentDb, databaseUrl, uniqueTenantId } from '../../helpers/db.js'

interface Line {
  entityType: string
  externalId: string
  fields: Record<string, unknown>
}

describe('gtm-agent writeback with the Salesforce connector', () => {
  let fake: SalesforceFake
  let dir: string
  let db: DbHandle
  let tenant: string
  // No Temporal here: GTM_DATA_DIR holds no dev server and TEMPORAL_ADDRESS is unset.
  const env = () => ({
    DATABASE_URL: databaseUrl(),
    CONNECTOR_ENCRYPTION_KEY: TEST_KEY_HEX,
    GTM_DATA_DIR: dir,
    TEMPORAL_ADDRESS: undefined,
  })
  const outputs: CliResult[] = []
  const cli = async (...args: string[]): Promise<CliResult> => {
    const result = await runCli(args, env())
    outputs.push(result)
    return result
  }
  /** `gtm-agent writeback <verb> salesforce --tenant <tenant> ...args` */
  const wb = (verb: string, ...args: string[]): Promise<CliResult> =>
    cli('writeback', verb, 'salesforce', '--tenant', tenant, ...args)
  /** With every log line (stderr), to show no token reaches them. */
  const cliLogging = async (...args: string[]): Promise<CliResult> => {
    const result = await runCli(args, { ...env(), LOG_LEVEL: 'debug' })
    outputs.push(result)
    return result
  }
  const ok = (result: CliResult): CliResult => {
    expect(result.code, result.stderr).toBe(0)
    return result
  }
  const jsonl = async (name: string, lines: Array<Line | string>): Promise<string> => {
    const file = path.join(dir, name)
    await writeFile(
      file,
      lines.map((l) => (typeof l === 'string' ? l : JSON.stringify(l))).join('\n') + '\n',
    )
    return file
  }
  const queue = () =>
    withTenant(db.db, tenant, (tx) =>
      tx.select().from(writebackQueue).orderBy(asc(writebackQueue.seq)),
    )
  const audits = (action: string) =>
    withTenant(db.db, tenant, (tx) =>
      tx
        .select()
        .from(auditLog)
        .where(eq(auditLog.action, action))
        .orderBy(asc(auditLog.createdAt)),
    )
  const patches = () =>
    fake.requests.filter((r) => r.method === 'PATCH' && r.path.endsWith('/composite/sobjects'))
  const score = (i: number): Line => ({
    entityType: 'account',
    externalId: fake.idOf('Account', i),
    fields: {
      combinedScore: 50 + (i % 50),
      tier: i % 2 ? 'hot' : 'warm',
      scoredAt: '2026-11-01T00:00:00Z',
    },
  })

  beforeAll(async () => {
    fake = await startSalesforceFake({ counts: { Account: 450, Contact: 4 } })
    dir = await mkdtemp(path.join(os.tmpdir(), 'gtm-sf-writeback-'))
    db = agentDb()
  })
  afterAll(async () => {
    // No token or refresh token reached the output or a log line of any command.
    const printed = outputs.map((o) => o.stdout + o.stderr).join('\n')
    expect(printed).toContain('"msg":"writeback batch sent"')
    for (const token of [fake.refreshToken, ...fake.issuedTokens()]) {
      expect(printed).not.toContain(token)
    }
    await fake.close()
    await db.close()
    await rm(dir, { recursive: true, force: true })
  })
  beforeEach(async () => {
    tenant = uniqueTenantId('sfwb')
    ok(await cli('tenants', 'create', tenant, '--name', 'Writeback'))
    const configFile = path.join(dir, `${tenant}.json`)
    await writeFile(configFile, JSON.stringify(fake.connectConfig()))
    ok(await cli('connect', 'salesforce', '--tenant', tenant, '--config', configFile))
    fake.requests.length = 0
  })

  it('shows the default writeback settings: accounts on with the GTM score fields, people off', async () => {
    const shown = ok(await wb('config'))
    const fieldMap = [
      { canonicalField: 'combinedScore', targetField: 'GTM_Score__c' },
      { canonicalField: 'tier', targetField: 'GTM_Tier__c' },
      { canonicalField: 'scoredAt', targetField: 'GTM_Scored_At__c' },
    ]
    expect(JSON.parse(shown.stdout)).toEqual([
      {
        connectorType: 'salesforce',
        entityType: 'person',
        enabled: false,
        fieldMap,
        isDefault: true,
      },
      {
        connectorType: 'salesforce',
        entityType: 'account',
        enabled: true,
        fieldMap,
        isDefault: true,
      },
    ])
    const activity = await wb('config', '--entity', 'activity')
    expect(activity.code).toBe(1)
    expect(stderrLines(activity)).toEqual([
      'error: Salesforce cannot write back activity records; it writes back: person, account.',
    ])
  })

  it('refuses a file with bad lines, naming each line, and queues nothing from it', async () => {
    const file = await jsonl('bad.jsonl', [
      score(0),
      score(1),
      { entityType: 'company', externalId: fake.idOf('Account', 2), fields: { tier: 'hot' } },
      '{"entityType": "account", "externalId": ',
      { entityType: 'account', externalId: fake.idOf('Account', 4), fields: {} },
      { entityType: 'person', externalId: fake.idOf('Account', 5), fields: { tier: 'hot' } },
      { entityType: 'activity', externalId: 'x', fields: { tier: 'hot' } },
    ])
    const result = await wb('enqueue', '--file', file)
    expect(result.code).toBe(1)
    const lines = stderrLines(result)
    expect(lines).toHaveLength(1)
    // JSON syntax is checked first, for the whole file.
    expect(lines[0]).toBe('error: Nothing was queued: line 4: not valid JSON.')

    const fixed = await jsonl('bad2.jsonl', [
      score(0),
      { entityType: 'company', externalId: fake.idOf('Account', 2), fields: { tier: 'hot' } },
      { entityType: 'account', externalId: fake.idOf('Account', 4), fields: {} },
      '',
      { entityType: 'person', externalId: fake.idOf('Account', 5), fields: { tier: 'hot' } },
      { entityType: 'activity', externalId: 'x', fields: { tier: 'hot' } },
    ])
    const again = await wb('enqueue', '--file', fixed)
    expect(again.code).toBe(1)
    const [line] = stderrLines(again)
    expect(line).toMatch(/^error: Nothing was queued: line 2: entityType /)
    expect(line).toContain('line 3: fields must name at least one field')
    expect(line).toContain(
      `line 5: Salesforce person ${fake.idOf('Account', 5)} is neither a Contact (003…) nor a Lead (00Q…)`,
    )
    expect(line).toContain(
      'line 6: Salesforce cannot write back activity records (only account, person)',
    )
    expect(line).not.toContain('line 1')
    expect(await queue()).toEqual([])
    expect(await audits('writeback.enqueue')).toEqual([])

    const missing = await wb('enqueue', '--file', path.join(dir, 'nope.jsonl'))
    expect(stderrLines(missing)).toEqual([
      `error: Cannot read the updates file ${path.join(dir, 'nope.jsonl')}: it does not exist.`,
    ])
  })

  it('previews current against new values without writing, then writes 450 accounts in three requests', async () => {
    const contacts = [0, 1].map((i) => ({
      entityType: 'person',
      externalId: fake.idOf('Contact', i),
      fields: { combinedScore: 70 + i, tier: 'hot' },
    }))
    const file = await jsonl('scores.jsonl', [
      ...Array.from({ length: 450 }, (_, i) => score(i)),
      ...contacts,
    ])
    const queued = ok(await wb('enqueue', '--file', file))
    expect(queued.stdout).toContain(`Queued 452 updates for Salesforce of tenant "${tenant}".`)
    expect(queued.stdout).toContain(
      `Send them with: gtm-agent writeback run salesforce --tenant ${tenant}`,
    )
    expect(await audits('writeback.enqueue')).toHaveLength(1)

    // One record already holds a score: the preview shows it as the current value.
    fake.update('Account', fake.idOf('Account', 3), { GTM_Score__c: 12 })
    fake.requests.length = 0
    const dry = ok(await wb('run', '--dry-run', '--json'))
    const report = JSON.parse(dry.stdout) as {
      dryRun: boolean
      items: Array<{ externalId: string; objectType: string; found: boolean; changes: unknown[] }>
      disabled: Record<string, number>
    }
    expect(report.dryRun).toBe(true)
    expect(report.items).toHaveLength(450)
    expect(report.disabled).toEqual({ person: 2 })
    expect(report.items[3]).toEqual({
      entityType: 'account',
      externalId: fake.idOf('Account', 3),
      objectType: 'Account',
      found: true,
      changes: [
        { field: 'GTM_Score__c', from: 12, to: 53 },
        { field: 'GTM_Tier__c', from: null, to: 'hot' },
        { field: 'GTM_Scored_At__c', from: null, to: '2026-11-01T00:00:00Z' },
      ],
    })
    // Read with queries only; nothing was written, in Salesforce or in the queue.
    expect(patches()).toEqual([])
    expect(fake.requests.every((r) => r.method === 'GET' || r.method === 'POST')).toBe(true)
    expect(fake.record('Account', fake.idOf('Account', 3))).toMatchObject({
      GTM_Score__c: 12,
      GTM_Tier__c: null,
    })
    const pending = await queue()
    expect(
      pending.every((r) => r.status === 'pending' && r.attempts === 0 && r.nextAttemptAt === null),
    ).toBe(true)
    expect(await audits('writeback.send')).toEqual([])

    const table = ok(await wb('run', '--dry-run'))
    expect(table.stdout).toMatch(/^ENTITY\s+ID\s+OBJECT\s+FIELD\s+CURRENT\s+NEW$/m)
    expect(table.stdout).toMatch(
      new RegExp(
        `^account\\s+${fake.idOf('Account', 3)}\\s+Account\\s+GTM_Score__c\\s+12\\s+53$`,
        'm',
      ),
    )
    expect(table.stdout).toContain(
      'Dry run: 450 records of 450 would be updated in Salesforce; nothing was written.',
    )
    expect(table.stdout).toContain('2 person updates are not shown: person writeback is disabled')
    expect(patches()).toEqual([])

    fake.failWriteback(fake.idOf('Account', 7), {
      statusCode: 'UNABLE_TO_LOCK_ROW',
      message: 'unable to obtain exclusive access to this record',
    })
    fake.failWriteback(fake.idOf('Account', 300), {
      statusCode: 'FIELD_CUSTOM_VALIDATION_EXCEPTION',
      message: 'Score must be positive',
    })
    const run = await wb('run', '--json')
    expect(run.code).toBe(1)
    expect(stderrLines(run)).toEqual([
      'error: 1 of 450 updates could not be written to Salesforce.',
    ])
    expect(patches().map((r) => r.records)).toEqual([200, 200, 50])
    const summary = JSON.parse(run.stdout) as Record<string, unknown>
    expect(summary).toMatchObject({
      sent: 448,
      failed: 1,
      retrying: 1,
      batches: 3,
      waiting: 1,
      disabled: { person: 2 },
      failures: [
        {
          entityType: 'account',
          externalId: fake.idOf('Account', 300),
          error: 'FIELD_CUSTOM_VALIDATION_EXCEPTION: Score must be positive',
        },
      ],
    })
    expect(fake.record('Account', fake.idOf('Account', 3))).toMatchObject({
      GTM_Score__c: 53,
      GTM_Tier__c: 'hot',
    })
    const rows = await queue()
    const byId = new Map(rows.map((r) => [r.externalId, r]))
    expect(byId.get(fake.idOf('Account', 7))).toMatchObject({
      status: 'pending',
      attempts: 1,
      lastError: 'UNABLE_TO_LOCK_ROW: unable to obtain exclusive access to this record',
    })
    expect(byId.get(fake.idOf('Account', 300))).toMatchObject({ status: 'failed', attempts: 1 })
    expect(rows.filter((r) => r.status === 'sent')).toHaveLength(448)
    expect(rows.filter((r) => r.entityType === 'person').map((r) => r.status)).toEqual([
      'pending',
      'pending',
    ])
    const sends = await audits('writeback.send')
    expect(sends.map((a) => a.metadata)).toEqual([
      { connectorType: 'salesforce', items: 200, sent: 199, failed: 0, retrying: 1 },
      { connectorType: 'salesforce', items: 200, sent: 199, failed: 1, retrying: 0 },
      { connectorType: 'salesforce', items: 50, sent: 50, failed: 0, retrying: 0 },
    ])

    const status = ok(await wb('status', '--json'))
    expect(JSON.parse(status.stdout)).toMatchObject({
      entityTypes: [
        { entityType: 'person', enabled: false, due: 2, waiting: 0, sent: 0, failed: 0 },
        { entityType: 'account', enabled: true, due: 0, waiting: 1, sent: 448, failed: 1 },
      ],
      failures: [
        {
          entityType: 'account',
          externalId: fake.idOf('Account', 300),
          attempts: 1,
          error: 'FIELD_CUSTOM_VALIDATION_EXCEPTION: Score must be positive',
        },
      ],
    })
    const statusTable = ok(await wb('status'))
    expect(statusTable.stdout).toMatch(/^account\s+enabled\s+0\s+1\s+448\s+1\s+\d{4}-/m)
    expect(statusTable.stdout).toContain('Latest failures in Salesforce:')

    // A second run finds nothing due: the retry waits for its backoff.
    fake.requests.length = 0
    const idle = ok(await wb('run'))
    expect(idle.stdout).toContain(
      `Nothing to send: no updates are due for Salesforce of tenant "${tenant}".`,
    )
    expect(idle.stdout).toMatch(/1 update waits for another attempt \(the next in \d+ s\)/)
    expect(patches()).toEqual([])
  })

  it('writes people once enabled, with the field map the admin set', async () => {
    const file = await jsonl('people.jsonl', [
      {
        entityType: 'person',
        externalId: fake.idOf('Contact', 2),
        fields: { combinedScore: 91, tier: 'hot' },
      },
      {
        entityType: 'person',
        externalId: fake.idOf('Contact', 3),
        fields: { combinedScore: 12, tier: 'cold' },
      },
    ])
    ok(await wb('enqueue', '--file', file))
    const skipped = ok(await wb('run'))
    expect(skipped.stdout).toContain(
      `2 person updates wait: person writeback is disabled (enable it with: gtm-agent writeback config salesforce --tenant ${tenant} --entity person --enable).`,
    )
    expect(patches()).toEqual([])

    // A bad field map is refused whole, naming the entry; nothing is stored.
    const bad = path.join(dir, `${tenant}-bad-map.json`)
    await writeFile(
      bad,
      JSON.stringify([
        { canonicalField: 'combinedScore', targetField: 'GTM_Score__c' },
        { canonicalField: 'tier', targetField: 'GTM Tier' },
      ]),
    )
    const refused = await wb('config', '--entity', 'person', '--enable', '--file', bad)
    expect(refused.code).toBe(1)
    expect(stderrLines(refused)).toEqual([
      'error: The field map\'s entry 1 targetField: must be a field name: a letter, then letters, digits or "_".',
    ])
    const both = await wb('config', '--entity', 'person', '--enable', '--disable')
    expect(both.code).toBe(2)
    expect(await withTenant(db.db, tenant, (tx) => tx.select().from(writebackConfigs))).toEqual([])

    // Contacts have no GTM_Tier__c field: the admin writes the score only.
    const map = path.join(dir, `${tenant}-map.json`)
    await writeFile(
      map,
      JSON.stringify({
        fieldMap: [{ canonicalField: 'combinedScore', targetField: 'GTM_Score__c' }],
      }),
    )
    const set = ok(await wb('config', '--entity', 'person', '--enable', '--file', map))
    expect(set.stdout).toBe(
      `Salesforce person writeback of tenant "${tenant}" is now enabled: combinedScore → GTM_Score__c.\n`,
    )
    const [config] = await audits('writeback.config')
    expect(config).toMatchObject({
      userId: expect.stringMatching(/^cli:/) as string,
      resource: 'writeback_config',
      changes: {
        before: { enabled: false },
        after: {
          enabled: true,
          fieldMap: [{ canonicalField: 'combinedScore', targetField: 'GTM_Score__c' }],
        },
      },
    })

    const sent = ok(
      await cliLogging('writeback', 'run', 'salesforce', '--tenant', tenant, '--json'),
    )
    expect(JSON.parse(sent.stdout)).toMatchObject({ sent: 2, failed: 0, disabled: {} })
    expect(patches().map((r) => r.records)).toEqual([2])
    expect(fake.record('Contact', fake.idOf('Contact', 2))).toMatchObject({ GTM_Score__c: 91 })
    expect(fake.record('Contact', fake.idOf('Contact', 3))).toMatchObject({ GTM_Score__c: 12 })

    // Disabling accounts holds their updates back.
    ok(await wb('config', '--entity', 'account', '--disable'))
    const accounts = await jsonl('acc.jsonl', [score(0)])
    ok(await wb('enqueue', '--file', accounts))
    fake.requests.length = 0
    const held = ok(await wb('run', '--json'))
    expect(JSON.parse(held.stdout)).toMatchObject({ sent: 0, disabled: { account: 1 } })
    expect(patches()).toEqual([])
  })
})
