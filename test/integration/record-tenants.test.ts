import { eq } from 'drizzle-orm'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { DbHandle } from '../../db/client.js'
import { accounts, activities, people, tenants } from '../../db/schema/index.js'
import { withTenant } from '../../db/tenant.js'
import { agentDb, databaseUrl, ownerDb, seedTenant, uniqueTenantId } from '../helpers/db.js'
import { expectPgError } from '../helpers/expect-db.js'

/**
 * people, accounts and activities have no declared foreign key to tenants (checked one row at a
 * time, it cost a sync as much as the rows' indexes); triggers keep its rules a statement at a
 * time. These are the rules, seen from the agent's role.
 */
describe('the tenant of a record', () => {
  let h: DbHandle
  /** The tables' owner (a superuser here), which row-level security does not stop. */
  let owner: DbHandle
  const clients: pg.Client[] = []

  /** A connection of its own, as the agent role. */
  async function session(): Promise<pg.Client> {
    const c = new pg.Client({ connectionString: databaseUrl() })
    await c.connect()
    clients.push(c)
    await c.query('set role gtm_agent')
    return c
  }

  async function seedRecords(tenantId: string): Promise<void> {
    await withTenant(h.db, tenantId, async (tx) => {
      await tx.insert(people).values([
        { tenantId, source: 'test', externalId: 'p1', email: 'p1@example.com' },
        { tenantId, source: 'test', externalId: 'p2', email: 'p2@example.com' },
      ])
      await tx.insert(accounts).values({ tenantId, source: 'test', externalId: 'a1', name: 'A' })
      await tx.insert(activities).values({
        tenantId,
        source: 'test',
        externalId: 'e1',
        type: 'meeting',
        occurredAt: new Date('2026-01-01T00:00:00Z'),
      })
    })
  }

  async function recordCounts(tenantId: string): Promise<number[]> {
    return withTenant(h.db, tenantId, async (tx) => [
      (await tx.select().from(people)).length,
      (await tx.select().from(accounts)).length,
      (await tx.select().from(activities)).length,
    ])
  }

  beforeAll(() => {
    h = agentDb()
    owner = ownerDb()
  })
  afterAll(async () => {
    for (const c of clients) await c.end().catch(() => undefined)
    await h.close()
    await owner.close()
  })

  it('must exist: a record of a tenant that does not, in any of the three tables, is refused by name', async () => {
    const ghost = uniqueTenantId('ghost')
    await expectPgError(
      withTenant(h.db, ghost, (tx) =>
        tx.insert(people).values({ tenantId: ghost, source: 'test', externalId: 'p1' }),
      ),
      new RegExp(`table "people" names tenant "${ghost}", which does not exist`),
    )
    await expectPgError(
      withTenant(h.db, ghost, (tx) =>
        tx
          .insert(accounts)
          .values({ tenantId: ghost, source: 'test', externalId: 'a1', name: 'A' }),
      ),
      new RegExp(`table "accounts" names tenant "${ghost}"`),
    )
    await expectPgError(
      withTenant(h.db, ghost, (tx) =>
        tx.insert(activities).values({
          tenantId: ghost,
          source: 'test',
          externalId: 'e1',
          type: 'meeting',
          occurredAt: new Date(),
        }),
      ),
      new RegExp(`table "activities" names tenant "${ghost}"`),
    )
    expect(await recordCounts(ghost)).toEqual([0, 0, 0])
  })

  it('is checked for every row of a statement, the existing tenant’s rows included', async () => {
    const real = await seedTenant(h)
    const ghost = uniqueTenantId('ghost')
    await expect(
      owner.pool.query(
        `insert into people (tenant_id, source, external_id) values ($1, 'test', 'p1'), ($2, 'test', 'p1')`,
        [real, ghost],
      ),
    ).rejects.toThrow(new RegExp(`names tenant "${ghost}", which does not exist`))
    expect(await recordCounts(real)).toEqual([0, 0, 0])
    // The same for an upsert's inserted rows.
    await expect(
      owner.pool.query(
        `insert into people (tenant_id, source, external_id) values ($1, 'test', 'p1')
           on conflict (tenant_id, source, external_id) do update set email = excluded.email`,
        [ghost],
      ),
    ).rejects.toThrow(/which does not exist/)
  })

  it('cannot be changed to a tenant that does not exist', async () => {
    const tenantId = await seedTenant(h)
    await seedRecords(tenantId)
    const ghost = uniqueTenantId('ghost')
    await expect(
      owner.pool.query(`update people set tenant_id = $2 where tenant_id = $1`, [tenantId, ghost]),
    ).rejects.toThrow(new RegExp(`names tenant "${ghost}", which does not exist`))
    expect(await recordCounts(tenantId)).toEqual([2, 1, 1])
  })

  it('takes its records with it when deleted, and leaves other tenants’ alone', async () => {
    const gone = await seedTenant(h)
    const kept = await seedTenant(h)
    await seedRecords(gone)
    await seedRecords(kept)
    const c = await session()
    await c.query('begin')
    await c.query(`select set_config('app.tenant_id', $1, true)`, [gone])
    expect((await c.query('delete from tenants where id = $1', [gone])).rowCount).toBe(1)
    // The deleting transaction's own tenant setting is as it was.
    const setting = await c.query<{ v: string }>(`select current_setting('app.tenant_id') as v`)
    expect(setting.rows[0]!.v).toBe(gone)
    await c.query('commit')
    expect(await recordCounts(gone)).toEqual([0, 0, 0])
    expect(await recordCounts(kept)).toEqual([2, 1, 1])
  })

  it('keeps its id while it has records', async () => {
    const tenantId = await seedTenant(h)
    await seedRecords(tenantId)
    await expectPgError(
      withTenant(h.db, tenantId, (tx) =>
        tx
          .update(tenants)
          .set({ id: uniqueTenantId('moved') })
          .where(eq(tenants.id, tenantId)),
      ),
      new RegExp(`tenant "${tenantId}" has records, so its id cannot change`),
    )
    expect(await recordCounts(tenantId)).toEqual([2, 1, 1])
  })

  it('waits, when deleted, for a transaction still writing its records, then deletes those too', async () => {
    const tenantId = await seedTenant(h)
    const writer = await session()
    const deleter = await session()
    await writer.query('begin')
    await writer.query(`select set_config('app.tenant_id', $1, true)`, [tenantId])
    await writer.query(
      `insert into people (tenant_id, source, external_id) select $1, 'test', 'p' || g from generate_series(1, 50) g`,
      [tenantId],
    )
    await deleter.query('begin')
    await deleter.query(`select set_config('app.tenant_id', $1, true)`, [tenantId])
    const deleting = deleter.query('delete from tenants where id = $1', [tenantId])
    // The delete waits on the writer's lock of the tenant row.
    const waiting = async (): Promise<boolean> => {
      const r = await owner.pool.query<{ n: number }>(
        `select count(*)::int as n from pg_stat_activity
          where query like 'delete from tenants%' and wait_event_type = 'Lock'`,
      )
      return r.rows[0]!.n === 1
    }
    await expect.poll(waiting, { timeout: 10_000 }).toBe(true)
    await writer.query('commit')
    expect((await deleting).rowCount).toBe(1)
    await deleter.query('commit')
    const left = await owner.pool.query<{ n: number }>(
      `select count(*)::int as n from people where tenant_id = $1`,
      [tenantId],
    )
    expect(left.rows[0]!.n).toBe(0)
  })
})
