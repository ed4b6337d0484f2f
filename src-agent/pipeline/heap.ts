import v8 from 'node:v8'

/** How much V8 may grow the heap after a full collection: by half of what is live, not up to 4×. */
const HEAP_GROWING_PERCENT = 50

let limited = false

/**
 * Keeps a syncing process at the same size however large the sync. A sync streams: it keeps a
 * few pages alive while allocating fast, and V8 answers a high allocation rate by growing the
 * heap up to four times what is live after each full collection, so the process held more
 * garbage, and grew, the longer the sync ran (peak RSS 223 MB at 39,000 records, 274 MB at
 * 390,000). Growing by half of what is live instead (185 and 187 MB) costs about a fifth more
 * collection time and no throughput (`npm run bench`). The flag is process-wide and read at every
 * collection; it is set once, before the first page, unless the operator set it.
 */
export function limitHeapGrowth(): void {
  if (limited) return
  limited = true
  const given = [...process.execArgv, process.env.NODE_OPTIONS ?? '']
  if (given.some((option) => /heap[-_]growing[-_]percent/.test(option))) return
  v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`)
}
