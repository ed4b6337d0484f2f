import { randomUUID } from 'node:crypto'
import { sql } from 'drizzle-orm'
import type { Db, Tx } from '../../db/client.js'
import { withSyncWork } from '../../db/tenant.js'
import type { SyncResult } from '../../shared/schemas.js'
import type { AnyConnector } from '../connectors/interface.js'
import {
  persistPage,
  persistSideTables,
  stagePage,
  upsertRecords,
  type EncodedRecords,
  type PageCounts,
  type PageWrite,
  type SyncRunRow,
} from './persist.js'
import type { StreamKey } from './stream-state.js'
import { syncCancelled } from './sync-failure.js'

/** A page ready to write: its records mapped, checked and encoded (only that is kept of them). */
export interface PreparedPage {
  batches: EncodedRecords
}

/** A page whose transaction is under way, and the counts it resolves to once committed. */
export interface PageInFlight {
  page: SyncResult
  /** How many of its records are upserts (not deletions or rejects). */
  upserts: number
  counts: Promise<PageCounts>
  batches: EncodedRecords
  /** The name of the advisory lock its transaction holds until it ends (see waitForTurn). */
  turn: string
  /**
   * Resolves once its transaction holds its turn, or has failed before taking it: only then may
   * the next page wait for that turn (taken first by the next page, it would be this page that
   * waits, for a page that waits for it).
   */
  turnTaken: Promise<void>
}

/** The page before the one written: in flight, and its commit counted once `settled`. */
export interface PageBefore {
  page: PageInFlight
  settled: Promise<void>
}

/** Where one run's pages go, and what the writer asks of the run as it writes them. */
export interface PageTarget {
  db: Db
  tenantId: string
  /** The run's connector: its id is the records' source. */
  connector: AnyConnector
  runId: string
  stream: StreamKey
  partition: string
  /** Whether the last committed page's rows were all new: the cheapest insert is tried first. */
  expectNew(): boolean
  /** Whether a stop came: a page waiting for the page before then rolls back. */
  stopped(): boolean
  /**
   * Given when the partition's last page also ends the run: that page's transaction marks the
   * run succeeded, holding the connection's row lock (see persistPage), and then calls this
   * with the run's row, so that the run ends with its last page, not in a transaction of its own
   * after it.
   */
  endRun?: (tx: Tx, run: SyncRunRow) => Promise<void>
}

/**
 * Writes the pages of one partition of a run, each in a transaction of its own. A page's rows
 * are staged and upserted into their tables at once, while the page before may still be writing
 * (unless the two share a record). Then, once the page before has committed and been counted
 * (`before`), the rest follows (deletions, rejects, the stream's new cursor) and the page
 * commits. When the page before fails, or a stop came while it was written (that page was the
 * one in hand), this one rolls back: it is read again next time.
 *
 * Waiting for the page before is done in Postgres too (its turn, an advisory lock its transaction
 * holds), so that Postgres sees the wait: should another writer (a webhook event) wait for this
 * page's rows while holding a row the page before needs, Postgres reports the deadlock and breaks
 * it, where a wait it cannot see would hang all three.
 */
export function pageWriter(
  target: PageTarget,
): (page: SyncResult, prepared: PreparedPage, before: PageBefore | undefined) => PageInFlight {
  // Each page's turn is named after this writer and the page's place in it.
  const turnPrefix = `gtm-page:${randomUUID()}`
  let pagesStarted = 0
  return (page, { batches }, before) => {
    const turn = `${turnPrefix}:${++pagesStarted}`
    let turnTaken!: () => void
    const taken = new Promise<void>((resolve) => (turnTaken = resolve))
    const written = withSyncWork(target.db, target.tenantId, async (tx) => {
      const write: PageWrite = {
        tenantId: target.tenantId,
        source: target.connector.id,
        runId: target.runId,
        batches,
        stream: target.stream,
        partition: target.partition,
        cursor: page.cursor,
        finished: !page.hasMore,
        endsRun: target.endRun !== undefined && !page.hasMore,
      }
      try {
        // The last page has no page after it to wait for its turn.
        if (page.hasMore) await waitForTurn(tx, turn)
      } finally {
        // This page holds its turn (or never will): the next one may wait for it.
        turnTaken()
      }
      const staged = await stagePage(tx, write)
      // The rows are upserted at once, while the page before may still be writing its own,
      // unless the two pages share a record: one page would then wait for the other's row
      // while that one waits for its turn. Those wait for the page before to commit.
      const upserted =
        before && sharesRecords(before.page.batches, batches)
          ? undefined
          : await upsertRecords(tx, {
              ...write,
              stream: write.stream.stream,
              staged,
              expectNew: target.expectNew(),
            })
      // Pages commit in order: a crash leaves the cursor of the last page whose rows are in.
      if (before) {
        await before.page.turnTaken
        await waitForTurn(tx, before.page.turn)
        await before.settled
        if (target.stopped()) throw syncCancelled()
      }
      const { run, ...pageCounts } = await persistPage(tx, {
        ...write,
        staged,
        expectNew: target.expectNew(),
        ...(upserted ? { upserted } : {}),
      })
      await persistSideTables(tx, target.connector, {
        tenantId: target.tenantId,
        records: page.records,
        batches,
      })
      if (run) await target.endRun!(tx, run)
      return pageCounts
    })
    // Awaited by the run (and by the next page); until then a failure must not count as
    // unhandled. A transaction that failed to begin has not run the callback above.
    written.then(turnTaken, turnTaken)
    return {
      page,
      upserts: upsertCount(batches),
      counts: written,
      batches,
      turn,
      turnTaken: taken,
    }
  }
}

/**
 * Takes the transaction-scoped advisory lock named `turn`, waiting while another transaction
 * holds it: a page takes its own turn first thing, and the next page waits for that turn.
 */
async function waitForTurn(tx: Tx, turn: string): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${turn}, 0))`)
}

/** Whether a record `batches` upserts is one `before` upserts or deletes. */
function sharesRecords(before: EncodedRecords, batches: EncodedRecords): boolean {
  return (['person', 'account', 'activity'] as const).some((entityType) => {
    const upserts = batches[entityType].ids
    const { ids: written, deletions } = before[entityType]
    if (upserts.length === 0 || written.length + deletions.length === 0) return false
    const ids = new Set(deletions)
    for (const id of written) ids.add(id)
    return upserts.some((id) => ids.has(id))
  })
}

function upsertCount(batches: EncodedRecords): number {
  return batches.person.ids.length + batches.account.ids.length + batches.activity.ids.length
}
