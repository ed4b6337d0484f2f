/**
 * Child entry of the benchmark: starts the loopback Salesforce fake with a generated org and
 * prints one JSON line ({ url, clientId, refreshToken }) on stdout. It runs in its own process so
 * that its CPU and memory are not counted as the agent's. It stops when stdin closes (the
 * orchestrator ended) or on SIGTERM, printing its own resource usage on the way out.
 *
 *   tsx test/bench/fake-server.ts --contacts 200000
 *
 * The other objects are sized from the Contacts (org.ts); each Bulk job takes BULK_JOB_MS.
 */
import { parseArgs } from 'node:util'
import { startSalesforceFake } from '../fakes/salesforce.js'
import { BULK_JOB_MS, orgCounts } from './org.js'

export interface FakeReady {
  url: string
  clientId: string
  refreshToken: string
}

const { values } = parseArgs({
  options: {
    contacts: { type: 'string' },
  },
})

const fake = await startSalesforceFake({
  counts: orgCounts(Number(values.contacts ?? '200000')),
  // Enough allowance that no run ever comes near the quota pause.
  dailyApiMax: 100_000_000,
  bulkJobMs: BULK_JOB_MS,
})
const ready: FakeReady = { url: fake.url, clientId: fake.clientId, refreshToken: fake.refreshToken }
process.stdout.write(`${JSON.stringify(ready)}\n`)

let stopping = false
async function stop(): Promise<void> {
  if (stopping) return
  stopping = true
  await fake.close().catch(() => undefined)
  const usage = process.resourceUsage()
  process.stderr.write(
    `fake: ${fake.requests.length} requests, cpu ${((usage.userCPUTime + usage.systemCPUTime) / 1e6).toFixed(1)} s, peak RSS ${Math.round(usage.maxRSS / 1024)} MB\n`,
  )
  process.exit(0)
}

process.stdin.resume()
process.stdin.on('end', () => void stop())
process.stdin.on('close', () => void stop())
process.on('SIGTERM', () => void stop())
process.on('SIGINT', () => void stop())
