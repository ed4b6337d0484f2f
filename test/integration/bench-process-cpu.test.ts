import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import pg from 'pg'
import { describe, expect, it } from 'vitest'
import { cpuDuring, localPostgresPid, processTreeCpuMs } from '../bench/process-cpu.js'
import { databaseUrl } from '../helpers/db.js'

describe("the benchmark's CPU accounting of other processes", () => {
  it('counts the CPU of a child that has ended', async () => {
    const burn = () =>
      new Promise<void>((resolve, reject) => {
        const child = spawn(process.execPath, [
          '-e',
          'const end = process.cpuUsage().user + 400e3; while (process.cpuUsage().user < end);',
        ])
        child.once('error', reject)
        child.once('exit', () => resolve())
      })
    const { cpuMs } = await cpuDuring([process.pid], burn)
    // The child spent 400 ms of user time alone; this process waited meanwhile.
    expect(cpuMs[0]).toBeGreaterThanOrEqual(400)
    expect(cpuMs[0]).toBeLessThan(5_000)
  })

  it("finds the local Postgres server and counts its backends' work", async () => {
    const pid = await localPostgresPid(databaseUrl())
    expect(pid).toBeTypeOf('number')
    expect(await readFile(`/proc/${pid}/comm`, 'utf8')).toMatch(/^postgres/)
    const client = new pg.Client({ connectionString: databaseUrl() })
    await client.connect()
    try {
      const busy = await cpuDuring([pid], () =>
        client.query('select count(*) from generate_series(1, 5000000)'),
      )
      // Its backend spent this on the query (other tests' sessions can only add to it).
      expect(busy.cpuMs[0]).toBeGreaterThan(250)
    } finally {
      await client.end()
    }
  })

  it('says nothing of a process that does not exist', async () => {
    expect(await processTreeCpuMs(2 ** 22 + 1)).toBeUndefined()
    const { cpuMs } = await cpuDuring([undefined, 2 ** 22 + 1], () => Promise.resolve())
    expect(cpuMs).toEqual([undefined, undefined])
  })
})
