import { asc } from 'drizzle-orm'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { activities, people, streamState, syncRuns } from '../../../db/schema/index.js'
import { withTenant } from '../../../db/tenant.js'
import { exampleConnector } from '../../../src-agent/connectors/__example__/index.js'
import { ConnectorRegistry } from '../../../src-agent/connectors/registry.js'
import { runSync } from '../../../src-agent/pipeline/run-sync.js'
import { connect } from '../../../src-agent/services/connections.js'
import { getMappings, setMappings } from '../../../src-agent/services/mappings.js'
import { signInThroughLoopback } from '../../../src-agent/signin/loopback.js'
import { startExampleFake, type ExampleFake } from '../../fakes/example.js'
import { browse } from '../../helpers/browser.js'
import { agentFixture, type AgentFixture } from '../../helpers/agent.js'
import { seedTenant } from '../../helpers/db.js'

/**
 * The connector scaffold new connectors are copied from, run for real against its small fake:
 * two streams, one of them partitioned (meetings per team), each with its own cursor; source
 * fields; per-stream mappings.
 */
describe('the connector scaffold (__example__)', () => {
  let fake: ExampleFake
  let agent: AgentFixture
  const registry = new ConnectorRegistry()
  registry.register(exampleConnector)

  beforeEach(async () => {
    fake = await startExampleFake({ pageSize: 3 })
    agent = { ...agentFixture(), registry }
    for (const id of ['c1', 'c2', 'c3', 'c4']) fake.addContact(id)
    fake.setTeams(['sales', 'success'])
    for (const id of ['m1', 'm2', 'm3', 'm4']) fake.addMeeting('sales', id, { contact_id: 'c1' })
    fake.addMeeting('success', 'm5')
  })
  afterEach(async () => {
    await fake.close()
    await agent.close()
  })

  async function connected(): Promise<string> {
    const tenantId = await seedTenant(agent.handle)
    await connect(
      { db: agent.handle.db, registry, keyring: agent.keyring, log: agent.log },
      {
        tenantId,
        connectorType: 'example',
        configJson: { baseUrl: fake.url, apiKey: fake.apiKey },
        userId: agent.userId,
      },
    )
    return tenantId
  }

  const stateOf = (tenantId: string) =>
    withTenant(agent.handle.db, tenantId, async (tx) => ({
      streams: (
        await tx
          .select()
          .from(streamState)
          .orderBy(asc(streamState.stream), asc(streamState.partition))
      ).map((s) => [s.stream, s.partition, s.cursor]),
      runs: (await tx.select().from(syncRuns).orderBy(asc(syncRuns.startedAt))).map((r) => [
        r.stream,
        r.status,
        r.created,
      ]),
      people: (await tx.select().from(people)).length,
      activities: (await tx.select().from(activities).orderBy(asc(activities.externalId))).map(
        (a) => [a.externalId, a.type, a.personExternalId],
      ),
    }))

  it('reads each stream, and each team of the partitioned one, from its own cursor', async () => {
    const tenantId = await connected()
    const first = await runSync(agent, { tenantId, connectorType: 'example' })
    expect(first).toMatchObject({ status: 'succeeded', created: 9 })
    expect(first.streams.map((s) => [s.stream, s.created])).toEqual([
      ['contacts', 4],
      ['meetings', 5],
    ])
    const t = await stateOf(tenantId)
    expect(t.streams).toEqual([
      ['contacts', '', 'after:4'],
      ['meetings', 'sales', 'after:8'],
      ['meetings', 'success', 'after:9'],
    ])
    expect(t.activities).toEqual([
      ['m1', 'meeting', 'c1'],
      ['m2', 'meeting', 'c1'],
      ['m3', 'meeting', 'c1'],
      ['m4', 'meeting', 'c1'],
      ['m5', 'meeting', null],
    ])

    // A new team appears, one goes away; only what changed is read again.
    fake.setTeams(['sales', 'board'])
    fake.addMeeting('board', 'm6')
    fake.addMeeting('sales', 'm2', { title: 'Renamed' })
    const from = fake.requests.length
    const second = await runSync(agent, { tenantId, connectorType: 'example' })
    expect(second).toMatchObject({ status: 'succeeded', created: 1, updated: 1 })
    expect((await stateOf(tenantId)).streams).toEqual([
      ['contacts', '', 'after:4'],
      ['meetings', 'board', 'after:10'],
      ['meetings', 'sales', 'after:11'],
    ])
    expect(fake.requests.slice(from)).toContain('/v1/teams/sales/meetings?cursor=after%3A8')
  })

  it('reads one partition again alone, and refuses a partition the source does not list', async () => {
    const tenantId = await connected()
    await runSync(agent, { tenantId, connectorType: 'example' })
    const from = fake.requests.length
    const again = await runSync(agent, {
      tenantId,
      connectorType: 'example',
      stream: 'meetings',
      partition: 'success',
      full: true,
    })
    expect(again).toMatchObject({ status: 'succeeded', mode: 'full', created: 0, pages: 1 })
    const read = fake.requests.slice(from).filter((r) => r.includes('/meetings'))
    expect(read).toEqual(['/v1/teams/success/meetings'])

    await expect(
      runSync(agent, {
        tenantId,
        connectorType: 'example',
        stream: 'meetings',
        partition: 'marketing',
      }),
    ).rejects.toThrow(
      `Example's stream "meetings" has no partition "marketing". Its partitions: sales, success.`,
    )
  })

  it('lists source fields per stream and keeps a stream’s mapping overrides to that stream', async () => {
    const tenantId = await connected()
    const { credentials } = await exampleConnector.authenticate({
      baseUrl: fake.url,
      apiKey: fake.apiKey,
    })
    const fields = await exampleConnector.listSourceFields!(credentials, 'meetings')
    expect(fields.map((f) => f.path)).toEqual([
      'id',
      'title',
      'contact_id',
      'started_at',
      'region_c',
    ])
    expect(fields.at(-1)).toEqual({
      path: 'region_c',
      label: 'Region',
      type: 'string',
      custom: true,
    })

    const target = { tenantId, connectorType: 'example', entityType: 'activity' as const, registry }
    await setMappings(agent.handle.db, {
      ...target,
      stream: 'meetings',
      userId: agent.userId,
      mappings: [{ sourceField: 'team', targetField: 'properties.team', transform: 'uppercase' }],
    })
    const view = await getMappings(agent.handle.db, { ...target, stream: 'meetings' })
    expect(view.effective.find((m) => m.targetField === 'properties.team')).toMatchObject({
      sourceField: 'team',
    })
    await runSync(agent, { tenantId, connectorType: 'example' })
    const [meeting] = await withTenant(agent.handle.db, tenantId, (tx) =>
      tx.select().from(activities).orderBy(asc(activities.externalId)),
    )
    expect(meeting!.properties).toMatchObject({ title: 'Meeting m1', team: 'SALES' })

    await expect(
      setMappings(agent.handle.db, {
        ...target,
        entityType: 'person',
        stream: 'meetings',
        userId: agent.userId,
        mappings: [],
      }),
    ).rejects.toThrow(`Example's stream "meetings" produces activity records, not person.`)
  })

  it('signs in through the loopback with code + PKCE, and a refused sign-in says why', async () => {
    const signIn = exampleConnector.signIn!
    const pages: Array<{ status: number; body: string }> = []
    const config = await signInThroughLoopback(
      signIn,
      { baseUrl: fake.url, clientId: 'example-app' },
      {
        vendor: 'Example',
        port: 0,
        open: async (url) => {
          pages.push(await browse(url))
        },
      },
    )
    expect(config).toEqual({ baseUrl: fake.url, apiKey: fake.apiKey })
    expect(pages[0]!.status).toBe(200)
    // What sign-in returns connects like a typed-in key.
    const { credentials } = await exampleConnector.authenticate(config)
    expect(await exampleConnector.listPartitions!(credentials, 'meetings')).toEqual([
      'sales',
      'success',
    ])

    fake.refuseSignIn()
    await expect(
      signInThroughLoopback(
        signIn,
        { baseUrl: fake.url, clientId: 'example-app' },
        {
          vendor: 'Example',
          port: 0,
          open: async (url) => {
            await browse(url)
          },
        },
      ),
    ).rejects.toThrow('Example sign-in was refused: The admin said no.')
  })
})
