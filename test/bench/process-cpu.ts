/**
 * CPU time of the benchmark's other processes (the fake, Postgres), read from /proc, so the report
 * can say what a sync cost in all and how fast the machine could possibly run it. Linux only;
 * elsewhere, or for a Postgres on another host, the figures are simply not given.
 */
import { readdir, readFile } from 'node:fs/promises'
import pg from 'pg'

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ: 100 on every Linux we run on). */
const TICKS_PER_SECOND = 100

interface ProcStat {
  ppid: number
  /** utime + stime of the process itself, in ticks. */
  own: number
  /** cutime + cstime: the children it has waited for, in ticks. */
  reaped: number
}

async function procStat(pid: number): Promise<ProcStat | undefined> {
  let text: string
  try {
    text = await readFile(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  // The command name is in parentheses and may hold spaces: fields count from after it.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
  const n = (i: number) => Number(fields[i - 3])
  return { ppid: n(4), own: n(14) + n(15), reaped: n(16) + n(17) }
}

/**
 * CPU milliseconds used so far by `pid`, its children that have ended, and its children still
 * running (a Postgres server's backends and helpers); undefined when /proc cannot tell.
 */
export async function processTreeCpuMs(pid: number): Promise<number | undefined> {
  const root = await procStat(pid)
  if (!root) return undefined
  let ticks = root.own + root.reaped
  const entries = await readdir('/proc').catch(() => [] as string[])
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    const stat = await procStat(Number(entry))
    if (stat?.ppid === pid) ticks += stat.own
  }
  return (ticks * 1000) / TICKS_PER_SECOND
}

/**
 * The pid of the Postgres server at `url` when it runs on this machine (its backend's parent),
 * else undefined.
 */
export async function localPostgresPid(url: string): Promise<number | undefined> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const res = await client.query<{ pid: number }>('select pg_backend_pid() as pid')
    const backend = res.rows[0]!.pid
    // A remote server's backend pid may name some unrelated local process: check it is ours.
    const comm = await readFile(`/proc/${backend}/comm`, 'utf8').catch(() => '')
    if (!comm.startsWith('postgres')) return undefined
    return (await procStat(backend))?.ppid
  } finally {
    await client.end()
  }
}

/** CPU milliseconds the process trees of `pids` use while `work` runs (undefined: unknown). */
export async function cpuDuring<T>(
  pids: ReadonlyArray<number | undefined>,
  work: () => Promise<T>,
): Promise<{ result: T; cpuMs: Array<number | undefined> }> {
  const read = () =>
    Promise.all(pids.map((pid) => (pid ? processTreeCpuMs(pid) : Promise.resolve(undefined))))
  const before = await read()
  const result = await work()
  const after = await read()
  return {
    result,
    cpuMs: after.map((a, i) => {
      const b = before[i]
      return a === undefined || b === undefined ? undefined : a - b
    }),
  }
}
