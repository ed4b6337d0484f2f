import { afterEach, describe, expect, it } from 'vitest'
import { pollDelay } from '../../../src-agent/connectors/salesforce/bulk.js'
import { salesforceConnector } from '../../../src-agent/connectors/salesforce/index.js'
import { salesforceConfigSchema } from '../../../src-agent/connectors/salesforce/schemas.js'
import { withAllRecords } from '../../../src-agent/pipeline/fetch-page.js'
import { startSalesforceFake, type SalesforceFake } from '../../fakes/salesforce.js'

/** Job status reads of a Bulk query job (GET …/jobs/query/750…), in order. */
const isStatusPoll = (r: { method: string; path: string }) =>
  r.method === 'GET' && /\/jobs\/query\/750\w+$/.test(r.path)

describe('Salesforce Bulk job polling over HTTP', () => {
  let fake: SalesforceFake | undefined

  afterEach(async () => {
    await fake?.close()
  })

  it('polls a job soon after creating it, then backs off, and reads results once it is JobComplete', async () => {
    // A job Salesforce works on for 700 ms, whatever the polling.
    fake = await startSalesforceFake({ bulkJobMs: 700, bulkPollsToComplete: 2 })
    // The default longest wait (2 s) and Bulk for every object read from scratch.
    const config = salesforceConfigSchema.parse({ ...fake.connectConfig(), bulkMinRecords: 1 })
    const { credentials } = await salesforceConnector.authenticate(config)
    const page = await salesforceConnector.sync(credentials, null, {
      full: true,
      stream: 'contacts',
    })
    // The job's only page is its last, whose rows are read at once to be counted against the job.
    expect(page.records).toHaveLength(30)
    expect(page.unread).toBeUndefined()

    const created = fake.requests.find((r) => r.method === 'POST' && r.path.endsWith('/jobs/query'))
    const polls = fake.requests.filter(isStatusPoll)
    const results = fake.requests.filter((r) => r.path.endsWith('/results'))
    // The first poll right after creating the job, then waits of 100, 150, 225, 338 ms: the job
    // (700 ms) is seen complete at about 813 ms, where a fixed 2 s interval would take 2 s.
    expect(polls.length).toBeGreaterThanOrEqual(4)
    expect(polls[0]!.at - created!.at).toBeLessThan(pollDelay(1, 2_000))
    const gaps = polls.slice(1).map((poll, i) => poll.at - polls[i]!.at)
    gaps.forEach((gap, i) => expect(gap).toBeGreaterThanOrEqual(pollDelay(i + 1, 2_000) - 5))
    expect(gaps[0]).toBeLessThan(1_000)
    // Completion is seen on the last poll only: no poll came after the job reached JobComplete.
    expect(polls.at(-1)!.at - created!.at).toBeGreaterThanOrEqual(700)
    expect(polls.at(-2)!.at - created!.at).toBeLessThan(720)
    // Results are read after the last poll, once, and Salesforce served them (JobComplete).
    expect(results).toHaveLength(1)
    expect(results[0]!.at).toBeGreaterThan(polls.at(-1)!.at)
    expect(results[0]!.status).toBe(200)
  })

  it('asks for the next result page as soon as a page arrives, one page ahead, and never twice', async () => {
    fake = await startSalesforceFake({ counts: { Contact: 50 }, bulkPollsToComplete: 1 })
    const config = salesforceConfigSchema.parse({
      ...fake.connectConfig(),
      bulkMinRecords: 1,
      bulkPollIntervalMs: 5,
    })
    const { credentials } = await salesforceConnector.authenticate(config)
    const results = () => fake!.requests.filter((r) => r.path.endsWith('/results'))
    const read: number[] = []
    let cursor: string | null = null
    for (;;) {
      const page = await salesforceConnector.sync(credentials, cursor, {
        full: true,
        pageSize: 10,
        stream: 'contacts',
      })
      // A page before the job's last leaves its rows in the CSV until the pipeline reads them.
      if (page.hasMore) expect([page.records.length, page.unread?.count]).toEqual([0, 10])
      read.push(withAllRecords(page).records.length)
      // At most the page just returned and the one after it have been asked for.
      expect(results().length).toBeLessThanOrEqual(read.length + 1)
      cursor = page.cursor
      if (!page.hasMore) break
      // While the pipeline writes this page, the next one is already on its way.
      await new Promise((resolve) => setTimeout(resolve, 200))
      expect(results().length).toBe(read.length + 1)
    }
    expect(read).toEqual([10, 10, 10, 10, 10])
    // Each page asked for once: the read-ahead was used, not repeated.
    const locators = results().map((r) => r.query.locator ?? '')
    expect(locators).toHaveLength(5)
    expect(new Set(locators).size).toBe(5)
    expect(results().every((r) => r.status === 200)).toBe(true)
  })
})
