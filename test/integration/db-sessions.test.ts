import { afterEach, describe, expect, it } from 'vitest'
import { AGENT_ROLE, SERVER_KEEPALIVE, type DbHandle } from '../../db/client.js'
import { agentDb, ownerDb } from '../helpers/db.js'

describe("the agent's database sessions", () => {
  const opened: DbHandle[] = []
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((h) => h.close()))
  })

  /** What a session of `handle` runs as, and its TCP keepalive settings in base units. */
  const session = async (handle: DbHandle) => {
    opened.push(handle)
    const user = await handle.pool.query<{ user: string; tcp: boolean }>(
      'select current_user as user, inet_client_addr() is not null as tcp',
    )
    const settings = await handle.pool.query<{ name: string; setting: string }>(
      'select name, setting from pg_settings where name = any($1) order by name',
      [Object.keys(SERVER_KEEPALIVE)],
    )
    return {
      ...user.rows[0],
      keepalive: Object.fromEntries(settings.rows.map((r) => [r.name, Number(r.setting)])),
    }
  }

  it('has Postgres drop a client whose machine is gone within about a minute, not hours', async () => {
    // A vanished worker's sessions, and the sync lock one of them holds, end with them.
    const agent = await session(agentDb())
    expect(agent).toEqual({ user: AGENT_ROLE, tcp: true, keepalive: { ...SERVER_KEEPALIVE } })
    const { tcp_keepalives_idle: idle, tcp_keepalives_interval: every } = SERVER_KEEPALIVE
    expect(idle + every * SERVER_KEEPALIVE.tcp_keepalives_count).toBeLessThanOrEqual(90)
    expect(SERVER_KEEPALIVE.tcp_user_timeout).toBeLessThanOrEqual(90_000)
  })

  it("sets the same on the owner's sessions, which keep their own role", async () => {
    const owner = await session(ownerDb())
    expect(owner.user).not.toBe(AGENT_ROLE)
    expect(owner.keepalive).toEqual({ ...SERVER_KEEPALIVE })
  })
})
