import v8 from 'node:v8'

/**
 * How much V8 may grow the heap after a full collection: by what is live (to twice it), not up
 * to 4×. Half of what is live kept the process a little smaller (peak RSS 170–183 MB against
 * 185–206 MB in `npm run bench`, Bulk pages of 2,000) but ran twice the full collections in a
 * 390,000-record sync (34 against 17), and their marking on V8's helper threads cost the agent
 * about 0.8 s more CPU (6.7 against 5.9 s, four syncs each, run in turns).
 */
const HEAP_GROWING_PERCENT = 100

let limited = false

/**
 * Keeps a syncing process at the same size however large the sync. A sync streams: it keeps a
 * few pages alive while allocating fast, and V8 answers a high allocation rate by growing the
 * heap up to four times what is live after each full collection, so the process held more
 * garbage, and grew, the longer the sync ran (peak RSS 223 MB at 39,000 records, 274 MB at
 * 390,000). Growing by what is live instead keeps it flat at 39,000, 390,000 and 1,950,000
 * records (185–206 MB with Bulk pages of 2,000, 201–220 MB with pages of 5,000). The flag is
 * process-wide and read at every collection; it is set once, before the first page, unless the
 * operator set it.
 */
export function limitHeapGrowth(): void {
  if (limited) return
  limited = true
  const given = [...process.execArgv, process.env.NODE_OPTIONS ?? '']
  if (given.some((option) => /heap[-_]growing[-_]percent/.test(option))) return
  v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`)
}
