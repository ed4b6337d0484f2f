import { useState } from 'react'
import type { IpcOutput } from '../../shared/ipc.js'
import { formatDateTime } from '../lib/format.js'
import { call, messageOf } from '../lib/gtm.js'
import { useQuery } from '../lib/use-query.js'
import { useNavStore } from '../stores/use-nav-store.js'
import { useToastStore } from '../stores/use-toast-store.js'
import { Callout, Card, EmptyState, QueryState } from './ui.js'

type Connector = IpcOutput<'connectors:list'>[number]

/** Records the quality rules refused, with why, and a retry once the mapping is fixed. */
export function RejectedPanel({ tenantId, connector }: { tenantId: string; connector: Connector }) {
  const [search, setSearch] = useState('')
  const [generation, setGeneration] = useState(0)
  const [retrying, setRetrying] = useState<string | null>(null)
  const [result, setResult] = useState<IpcOutput<'quarantine:retry'> | null>(null)
  const go = useNavStore((s) => s.go)
  const show = useToastStore((s) => s.show)
  const term = search.trim()
  const query = useQuery(`rejected/${tenantId}/${connector.id}/${term}/${generation}`, () =>
    call('quarantine:list', {
      tenantId,
      connectorType: connector.id,
      ...(term ? { externalId: term } : {}),
      limit: 200,
    }),
  )

  const retry = async (ids?: string[]): Promise<void> => {
    setRetrying(ids?.[0] ?? 'all')
    try {
      const outcome = await call('quarantine:retry', {
        tenantId,
        connectorType: connector.id,
        ...(ids ? { ids } : {}),
      })
      setResult(outcome)
      setGeneration((g) => g + 1)
    } catch (err) {
      show('bad', `Retry failed: ${messageOf(err)}`)
    } finally {
      setRetrying(null)
    }
  }

  return (
    <Card
      title="Rejected records"
      labelledBy="rejected-title"
      actions={
        <>
          <button
            type="button"
            className="button"
            onClick={() => go({ page: 'mappings', connectorType: connector.id })}
          >
            Fix mappings
          </button>
          <button
            type="button"
            className="button button-primary"
            disabled={retrying !== null || !query.data || query.data.length === 0}
            onClick={() => void retry()}
          >
            {retrying === 'all' ? 'Retrying…' : 'Retry all'}
          </button>
        </>
      }
    >
      <p className="small muted">
        A record a quality rule refused is kept here with the field at fault. Fix the mapping (or
        the record in {connector.name}), then retry: the records that pass are stored.
      </p>
      <div className="field" style={{ maxWidth: 360 }}>
        <label htmlFor="rejected-search">Search by external id</label>
        <input
          id="rejected-search"
          type="search"
          value={search}
          onChange={(e) => setSearch(e.target.value)}
          placeholder="e.g. 003000000000001"
        />
      </div>
      {result ? (
        <Callout
          tone={result.stillRejected === 0 ? 'ok' : 'warn'}
          title="Retry finished"
          role="status"
        >
          <p data-testid="retry-result">
            {result.retried} retried: {result.accepted} stored, {result.stillRejected} still
            rejected.
          </p>
        </Callout>
      ) : null}
      <QueryState {...query} what="rejected records" lines={4} />
      {query.data && query.data.length === 0 ? (
        <EmptyState title={term ? `No rejected record matches "${term}"` : 'No rejected records'}>
          {term
            ? 'Check the id, or clear the search.'
            : 'Every record read so far passed the quality rules.'}
        </EmptyState>
      ) : null}
      {query.data && query.data.length > 0 ? (
        <div className="table-wrap">
          <table data-testid="rejected">
            <thead>
              <tr>
                <th>External id</th>
                <th>Type</th>
                <th>Why</th>
                <th>Raw record</th>
                <th>When</th>
                <th>
                  <span className="visually-hidden">Retry</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {query.data.map((item) => (
                <tr key={item.id}>
                  <td className="mono">{item.externalId ?? '—'}</td>
                  <td>{item.entityType}</td>
                  <td className="reject-reason">{item.reason}</td>
                  <td>
                    <details>
                      <summary className="small">Show</summary>
                      <pre className="json" tabIndex={0}>
                        {JSON.stringify(item.rawPayload, null, 2)}
                      </pre>
                    </details>
                  </td>
                  <td className="small">{formatDateTime(item.createdAt)}</td>
                  <td>
                    <button
                      type="button"
                      className="button"
                      disabled={retrying !== null}
                      aria-label={`Retry ${item.externalId ?? 'record'}`}
                      onClick={() => void retry([item.id])}
                    >
                      {retrying === item.id ? 'Retrying…' : 'Retry'}
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </Card>
  )
}
