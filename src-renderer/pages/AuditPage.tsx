import { useState } from 'react'
import { redact } from '../../shared/redact.js'
import { EmptyState, PageHeader, QueryState, Card } from '../components/ui.js'
import { dayBound, formatDateTime } from '../lib/format.js'
import { call } from '../lib/gtm.js'
import { useQuery } from '../lib/use-query.js'

type Filters = { action: string; resource: string; userId: string; from: string; to: string }
const empty: Filters = { action: '', resource: '', userId: '', from: '', to: '' }

/** Screen 6: who changed what, when; before and after, secrets redacted. */
export function AuditPage({ tenantId }: { tenantId: string }) {
  const [filters, setFilters] = useState<Filters>(empty)
  const [applied, setApplied] = useState<Filters>(empty)
  const from = dayBound(applied.from, false)
  const to = dayBound(applied.to, true)
  const query = useQuery(`audit/${tenantId}/${JSON.stringify(applied)}`, () =>
    call('audit:list', {
      tenantId,
      limit: 200,
      ...(applied.action ? { action: applied.action.trim() } : {}),
      ...(applied.resource ? { resource: applied.resource.trim() } : {}),
      ...(applied.userId ? { userId: applied.userId.trim() } : {}),
      ...(from ? { from } : {}),
      ...(to ? { to } : {}),
    }),
  )
  const set = (key: keyof Filters, value: string): void =>
    setFilters((f) => ({ ...f, [key]: value }))
  const filtered = Object.values(applied).some(Boolean)

  return (
    <div className="page">
      <PageHeader
        title="Audit log"
        description="Every change to connections, mappings, schedules and writeback, with who made it."
      />
      <Card labelledBy="audit-filters" title="Filter">
        <form
          className="row"
          style={{ alignItems: 'flex-end' }}
          onSubmit={(e) => {
            e.preventDefault()
            setApplied(filters)
          }}
        >
          <div className="field">
            <label htmlFor="audit-action">Action</label>
            <input
              id="audit-action"
              type="text"
              placeholder="mapping.update"
              value={filters.action}
              onChange={(e) => set('action', e.target.value)}
            />
          </div>
          <div className="field">
            <label htmlFor="audit-resource">Resource</label>
            <input
              id="audit-resource"
              type="text"
              placeholder="connector"
              value={filters.resource}
              onChange={(e) => set('resource', e.target.value)}
            />
          </div>
          <div className="field">
            <label htmlFor="audit-user">User</label>
            <input
              id="audit-user"
              type="text"
              placeholder="app:alex"
              value={filters.userId}
              onChange={(e) => set('userId', e.target.value)}
            />
          </div>
          <div className="field">
            <label htmlFor="audit-from">From</label>
            <input
              id="audit-from"
              type="date"
              value={filters.from}
              onChange={(e) => set('from', e.target.value)}
            />
          </div>
          <div className="field">
            <label htmlFor="audit-to">To</label>
            <input
              id="audit-to"
              type="date"
              value={filters.to}
              onChange={(e) => set('to', e.target.value)}
            />
          </div>
          <button type="submit" className="button button-primary">
            Apply
          </button>
          {filtered ? (
            <button
              type="button"
              className="button"
              onClick={() => {
                setFilters(empty)
                setApplied(empty)
              }}
            >
              Clear
            </button>
          ) : null}
        </form>
      </Card>
      <QueryState {...query} what="the audit log" lines={6} />
      {query.data && query.data.length === 0 ? (
        <EmptyState title={filtered ? 'No entry matches these filters' : 'No changes recorded yet'}>
          {filtered
            ? 'Widen the dates or clear a filter.'
            : 'Connecting a source or editing a mapping adds the first entry.'}
        </EmptyState>
      ) : null}
      {query.data && query.data.length > 0 ? (
        <Card labelledBy="audit-entries" title={`${query.data.length} entries`}>
          <div className="table-wrap">
            <table data-testid="audit">
              <thead>
                <tr>
                  <th>When</th>
                  <th>User</th>
                  <th>Action</th>
                  <th>Resource</th>
                  <th>Before</th>
                  <th>After</th>
                </tr>
              </thead>
              <tbody>
                {query.data.map((entry) => (
                  <tr key={entry.id} data-action={entry.action}>
                    <td className="small">{formatDateTime(entry.createdAt)}</td>
                    <td className="small">{entry.userId}</td>
                    <td>
                      <code>{entry.action}</code>
                    </td>
                    <td className="small">
                      {entry.resource}
                      {entry.resourceId ? (
                        <div className="xsmall muted mono">{entry.resourceId}</div>
                      ) : null}
                    </td>
                    <td>
                      {entry.changes.before !== undefined ? (
                        <pre className="json" tabIndex={0}>
                          {JSON.stringify(redact(entry.changes.before), null, 2)}
                        </pre>
                      ) : (
                        '—'
                      )}
                    </td>
                    <td>
                      {entry.changes.after !== undefined ? (
                        <pre className="json" tabIndex={0}>
                          {JSON.stringify(redact(entry.changes.after), null, 2)}
                        </pre>
                      ) : (
                        '—'
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </Card>
      ) : null}
    </div>
  )
}
