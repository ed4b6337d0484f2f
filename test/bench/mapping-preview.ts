/**
 * Child entry of the benchmark: the mapping editor's live preview (pipeline/mapping-preview.ts)
 * over 1,000 Salesforce Contacts in memory, shaped as the connector hands them over, with a draft
 * that changes a transform and one record in 50 carrying an address that is no email. The
 * samples are read once and kept by the agent, so what an admin waits for on each edit is this:
 * the draft checked, every sample mapped, coerced and validated, each row made plain JSON.
 * After a warm-up it times `--runs` previews and prints one JSON line (PreviewReport).
 *
 *   tsx test/bench/mapping-preview.ts [--samples 1000] [--runs 30]
 */
import { parseArgs } from 'node:util'
import { defaultMappings, toSourceRecord } from '../../src-agent/connectors/salesforce/map.js'
import { previewMappings } from '../../src-agent/pipeline/mapping-preview.js'

export interface PreviewReport {
  samples: number
  rows: number
  rejected: number
  runs: number
  /** Milliseconds per preview: the median and the range of the timed runs. */
  medianMs: number
  minMs: number
  maxMs: number
}

const { values } = parseArgs({
  options: {
    samples: { type: 'string', default: '1000' },
    runs: { type: 'string', default: '30' },
  },
})
const samples = Number(values.samples) || 1000
const runs = Math.max(1, Number(values.runs) || 30)

const records = Array.from({ length: samples }, (_, i) =>
  toSourceRecord('Contact', {
    attributes: { type: 'Contact', url: `/services/data/v62.0/sobjects/Contact/${i}` },
    Id: `003FK${String(i).padStart(10, '0')}AAA`,
    SystemModstamp: new Date(Date.UTC(2025, 0, 1) + i * 1000).toISOString(),
    IsDeleted: false,
    OwnerId: '005FK0000000001AAA',
    AccountId: `001FK${String(i % 100).padStart(10, '0')}AAA`,
    FirstName: `First${i}`,
    LastName: `Last${i}`,
    Email: i % 50 === 7 ? `not an email ${i}` : `Contact${i}@Example.com`,
    Title: ['VP Sales', 'CTO', ' Head of RevOps ', null][i % 4],
    Phone: `+1 555 ${1000 + i}`,
    LeadSource: 'Web',
    Description: i % 3 === 0 ? `Met at the ${i}th conference; follow up in Q${(i % 4) + 1}.` : null,
    GTM_Score__c: null,
  }),
)
const draft = defaultMappings('person').map((m) =>
  m.targetField === 'lastName' ? { ...m, transform: 'uppercase' as const } : m,
)

const preview = () =>
  previewMappings({ entityType: 'person', records, mappings: draft, limit: samples })

// Warm-up: the JIT settles on the mapping and quality code before anything is timed.
for (let i = 0; i < 10; i++) preview()
const times: number[] = []
let last = preview()
for (let i = 0; i < runs; i++) {
  const started = performance.now()
  last = preview()
  times.push(performance.now() - started)
}
times.sort((a, b) => a - b)
const mid = times.length >> 1
const report: PreviewReport = {
  samples,
  rows: last.rows.length,
  rejected: last.rejected,
  runs,
  medianMs: times.length % 2 ? times[mid]! : (times[mid - 1]! + times[mid]!) / 2,
  minMs: times[0]!,
  maxMs: times.at(-1)!,
}
process.stdout.write(`${JSON.stringify(report)}\n`)
