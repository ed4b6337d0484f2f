import { sql } from 'drizzle-orm'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  accounts,
  auditLog,
  connectors,
  people,
  tenants,
  webhookInbox,
} from '../../db/schema/index.js'
import { createDb, type DbHandle, type Tx } from '../../db/client.js'
import { withSyncWork, withTenant } from '../../db/tenant.js'
import { agentDb, databaseUrl, seedTenant } from '../helpers/db.js'
import { expectPgError } from '../helpers/expect-db.js'

describe('row-level security', () => {
  let h: DbHandle
  let a: string
  let b: string

  beforeAll(async () => {
    h = agentDb()
    a = await seedTenant(h)
    b = await seedTenant(h)
    await withTenant(h.db, a, (tx) =>
      tx.insert(people).values({ tenantId: a, source: 'test', externalId: 'p1', email: 'a@a.com' }),
    )
    await withTenant(h.db, b, (tx) =>
      tx.insert(people).values({ tenantId: b, source: 'test', externalId: 'p1', email: 'b@b.com' }),
    )
  })
  afterAll(() => h.close())

  it('shows a tenant only its own rows', async () => {
    const seenByA = await withTenant(h.db, a, (tx) => tx.select().from(people))
    expect(seenByA.map((p) => p.email)).toEqual(['a@a.com'])
    const tenantsSeenByA = await withTenant(h.db, a, (tx) => tx.select().from(tenants))
    expect(tenantsSeenByA.map((t) => t.id)).toEqual([a])
  })

  it('refuses to write another tenant’s rows', async () => {
    await expectPgError(
      withTenant(h.db, a, (tx) =>
        tx
          .insert(people)
          .values({ tenantId: b, source: 'test', externalId: 'x', email: 'x@x.com' }),
      ),
      /row-level security/,
    )
    const updated = await withTenant(h.db, a, (tx) =>
      tx
        .update(people)
        .set({ email: 'hacked@a.com' })
        .where(sql`${people.tenantId} = ${b}`)
        .returning(),
    )
    expect(updated).toHaveLength(0)
    const bRows = await withTenant(h.db, b, (tx) => tx.select().from(people))
    expect(bRows.map((p) => p.email)).toEqual(['b@b.com'])
  })

  it('shows nothing and accepts nothing without a tenant', async () => {
    const rows = await h.db.select().from(people)
    expect(rows).toHaveLength(0)
    const ts = await h.db.select().from(tenants)
    expect(ts).toHaveLength(0)
    await expectPgError(
      h.db
        .insert(accounts)
        .values({ tenantId: a, source: 'test', externalId: 'acc', name: 'Acme' }),
      /row-level security/,
    )
  })

  it('holds for raw SQL as the agent role, which owns nothing', async () => {
    const c = new pg.Client({ connectionString: databaseUrl() })
    await c.connect()
    try {
      await c.query('set role gtm_agent')
      const who = await c.query<{ u: string; su: boolean; owner: boolean }>(
        `select current_user as u,
                (select rolsuper from pg_roles where rolname = current_user) as su,
                (select tableowner = current_user from pg_tables where tablename = 'people') as owner`,
      )
      expect(who.rows[0]).toEqual({ u: 'gtm_agent', su: false, owner: false })
      expect((await c.query('select * from people')).rowCount).toBe(0)
      await c.query('begin')
      await c.query(`select set_config('app.tenant_id', $1, true)`, [b])
      const seen = await c.query<{ email: string }>('select email from people')
      expect(seen.rows.map((r) => r.email)).toEqual(['b@b.com'])
      await expect(
        c.query(`insert into people (tenant_id, source, external_id) values ($1, 'test', 'y')`, [
          a,
        ]),
      ).rejects.toThrow(/row-level security/)
      await c.query('rollback')
      // The audit log is append-only for the agent.
      await c.query('begin')
      await c.query(`select set_config('app.tenant_id', $1, true)`, [a])
      await expect(c.query('delete from audit_log')).rejects.toThrow(/permission denied/)
      await c.query('rollback')
    } finally {
      await c.end()
    }
  })

  it('keeps each tenant’s webhook inbox to itself', async () => {
    const inboxRow = async (tenantId: string) =>
      withTenant(h.db, tenantId, async (tx) => {
        const [connection] = await tx
          .insert(connectors)
          .values({ tenantId, type: 'test' })
          .returning({ id: connectors.id })
        await tx.insert(webhookInbox).values({
          tenantId,
          connectorId: connection!.id,
          source: 'test',
          eventId: 'evt-1',
          eventType: 'x',
          payload: { owner: tenantId },
          records: [],
        })
        return connection!.id
      })
    const aConnection = await inboxRow(a)
    await inboxRow(b)
    const seenByA = await withTenant(h.db, a, (tx) => tx.select().from(webhookInbox))
    expect(seenByA.map((r) => r.payload)).toEqual([{ owner: a }])
    expect(await h.db.select().from(webhookInbox)).toHaveLength(0)
    // A cannot slip an event into B's inbox, not even through its own connection.
    await expectPgError(
      withTenant(h.db, a, (tx) =>
        tx.insert(webhookInbox).values({
          tenantId: b,
          connectorId: aConnection,
          source: 'test',
          eventId: 'evt-2',
          eventType: 'x',
          payload: {},
          records: [],
        }),
      ),
      /row-level security/,
    )
    const changed = await withTenant(h.db, a, (tx) =>
      tx
        .update(webhookInbox)
        .set({ status: 'processed' })
        .where(sql`${webhookInbox.tenantId} = ${b}`)
        .returning(),
    )
    expect(changed).toHaveLength(0)
  })

  it('binds every table with a tenant_id: row-level security enabled, forced, and a tenant policy', async () => {
    const { rows } = await h.pool.query<{
      table: string
      enabled: boolean
      forced: boolean
      policy: boolean
    }>(
      `select c.relname as "table", c.relrowsecurity as enabled, c.relforcerowsecurity as forced,
              exists (select 1 from pg_policies p
                      where p.tablename = c.relname and p.policyname = 'tenant_isolation') as policy
         from pg_class c
         join pg_namespace n on n.oid = c.relnamespace and n.nspname = 'public'
         join pg_attribute a on a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped
        where c.relkind = 'r'
        order by 1`,
    )
    // The tables of connectors (fathom_meetings) included: a new one cannot ship unguarded.
    expect(rows.map((r) => r.table)).toEqual(
      expect.arrayContaining(['people', 'fathom_meetings', 'webhook_inbox']),
    )
    expect(rows.filter((r) => !r.enabled || !r.forced || !r.policy)).toEqual([])
  })

  it('keeps the tenant setting inside its transaction', async () => {
    await withTenant(h.db, a, (tx) => tx.select().from(auditLog))
    const after = await h.db.execute<{ t: string | null }>(
      sql`select current_setting('app.tenant_id', true) as t`,
    )
    expect(after.rows[0]?.t ?? '').toBe('')
  })

  it('commits a sync’s work without waiting for the disk, and that setting ends with its transaction', async () => {
    const one = createDb(databaseUrl(), { max: 1 })
    try {
      // A session that has set app.tenant_id reads '' once the transaction is over, not null.
      const settings = sql`select coalesce(current_setting('app.tenant_id', true), '') as tenant,
        current_setting('synchronous_commit') as commit`
      const read = async (tx: Pick<Tx, 'execute'>) =>
        (await tx.execute<{ tenant: string; commit: string }>(settings)).rows[0]
      // The session's own way first (a test server may run with synchronous_commit off).
      await one.db.execute(sql`set synchronous_commit = on`)
      const outside = await read(one.db)
      expect(outside?.commit).toBe('on')
      expect(await withSyncWork(one.db, a, read)).toEqual({ tenant: a, commit: 'off' })
      // The same session afterwards, and an ordinary tenant transaction: the session's own.
      expect(await read(one.db)).toEqual(outside)
      expect(await withTenant(one.db, a, read)).toEqual({ tenant: a, commit: 'on' })
    } finally {
      await one.close()
    }
  })

  it('rolls back work that failed and gives its connection back clean', async () => {
    const one = createDb(databaseUrl(), { max: 1 })
    try {
      const written = withTenant(one.db, a, async (tx) => {
        await tx
          .insert(people)
          .values({ tenantId: a, source: 'test', externalId: 'rolled-back', email: 'r@a.com' })
        throw new Error('the work failed')
      })
      await expect(written).rejects.toThrow('the work failed')
      // The pool's one connection: no transaction left open, no tenant, and the row gone.
      const outside = await one.db.execute<{ tenant: string; open: boolean }>(
        sql`select coalesce(current_setting('app.tenant_id', true), '') as tenant,
          pg_current_xact_id_if_assigned() is not null as open`,
      )
      expect(outside.rows[0]).toEqual({ tenant: '', open: false })
      const rows = await withTenant(one.db, a, (tx) =>
        tx
          .select()
          .from(people)
          .where(sql`${people.externalId} = 'rolled-back'`),
      )
      expect(rows).toEqual([])
    } finally {
      await one.close()
    }
  })

  it('lists the tenant directory only through its function', async () => {
    const dir = await h.db.execute<{ id: string }>(sql`select id from gtm_tenant_directory()`)
    const ids = dir.rows.map((r) => r.id)
    expect(ids).toContain(a)
    expect(ids).toContain(b)
  })
})
