import { useEffect, useMemo, useRef, useState } from 'react'
import type { IpcOutput } from '../../shared/ipc.js'
import {
  canonicalSchemas,
  requiredCanonicalFields,
  type EntityType,
  type FieldMapping,
  type Transform,
} from '../../shared/schemas.js'
import {
  Badge,
  Callout,
  Card,
  ConfirmDialog,
  EmptyState,
  PageHeader,
  QueryState,
} from '../components/ui.js'
import { formatDuration } from '../lib/format.js'
import { call, messageOf } from '../lib/gtm.js'
import { useQuery } from '../lib/use-query.js'
import { useNavStore } from '../stores/use-nav-store.js'
import { useToastStore } from '../stores/use-toast-store.js'

type Connector = IpcOutput<'connectors:list'>[number]
type MappingView = IpcOutput<'mappings:get'>
type SourceField = IpcOutput<'sources:fields'>[number]
type Preview = IpcOutput<'mappings:preview'>

const transforms: Transform[] = ['none', 'lowercase', 'uppercase', 'trim']
const PROPERTIES_PREFIX = 'properties.'

interface Row extends FieldMapping {
  key: number
}

let rowKey = 1
const toRows = (mappings: readonly FieldMapping[]): Row[] =>
  mappings.map((m) => ({ ...m, transform: m.transform ?? 'none', key: rowKey++ }))
const toMappings = (rows: readonly Row[]): FieldMapping[] =>
  rows.map(({ sourceField, targetField, transform }) => ({
    sourceField: sourceField.trim(),
    targetField: targetField.trim(),
    transform: transform ?? 'none',
  }))
const same = (a: FieldMapping | undefined, b: FieldMapping | undefined): boolean =>
  !!a &&
  !!b &&
  a.sourceField === b.sourceField &&
  a.targetField === b.targetField &&
  (a.transform ?? 'none') === (b.transform ?? 'none')

/** What is wrong with each row, by row key, and the required targets left unmapped. */
export function validateRows(
  entityType: EntityType,
  rows: readonly Row[],
): { rows: Record<number, string>; missing: string[] } {
  const targets = Object.keys(canonicalSchemas[entityType].shape)
  const errors: Record<number, string> = {}
  const seen = new Map<string, number>()
  for (const row of rows) {
    const target = row.targetField.trim()
    if (!row.sourceField.trim()) errors[row.key] = 'Choose a source field.'
    else if (!target) errors[row.key] = 'Choose a target field.'
    else if (
      !targets.includes(target) &&
      !(
        entityType === 'activity' &&
        target.startsWith(PROPERTIES_PREFIX) &&
        target.length > PROPERTIES_PREFIX.length
      )
    ) {
      errors[row.key] = `"${target}" is not a ${entityType} field.`
    } else if (seen.has(target)) errors[row.key] = `"${target}" is already mapped above.`
    seen.set(target, row.key)
  }
  const missing = requiredCanonicalFields[entityType].filter((f) => !seen.has(f))
  return { rows: errors, missing }
}

async function loadEditor(tenantId: string, connectorType: string, stream: string | undefined) {
  const connector = (await call('connectors:list')).find((c) => c.id === connectorType)
  if (!connector) throw new Error(`There is no connector named "${connectorType}".`)
  const streamDef = connector.streams.find((s) => s.id === stream) ?? connector.streams[0]
  if (!streamDef) throw new Error(`${connector.name} has no streams.`)
  const target = { tenantId, connectorType, entityType: streamDef.entityType, stream: streamDef.id }
  const [view, fields] = await Promise.all([
    call('mappings:get', target),
    call('sources:fields', { tenantId, connectorType, stream: streamDef.id }).catch(
      (err: unknown) => new Error(messageOf(err)),
    ),
  ])
  return { connector, stream: streamDef, view, fields }
}

/** Screen 4: a stream's field mappings, with a live preview on records read from the source. */
export function MappingsPage({
  tenantId,
  connectorType,
  stream,
}: {
  tenantId: string
  connectorType: string
  stream?: string
}) {
  const query = useQuery(`mappings/${tenantId}/${connectorType}/${stream ?? ''}`, () =>
    loadEditor(tenantId, connectorType, stream),
  )
  const go = useNavStore((s) => s.go)
  return (
    <div className="page">
      <PageHeader
        back={{
          label: query.data?.connector.name ?? 'Connector',
          onClick: () => go({ page: 'connector', connectorType, tab: 'overview' }),
        }}
        title="Field mappings"
        description="Which source field fills each canonical field. The preview runs your draft on records read from the source, before you save."
        actions={
          query.data && query.data.connector.streams.length > 1 ? (
            <div className="field">
              <label htmlFor="stream">Stream</label>
              <select
                id="stream"
                value={query.data.stream.id}
                onChange={(e) => go({ page: 'mappings', connectorType, stream: e.target.value })}
              >
                {query.data.connector.streams.map((s) => (
                  <option key={s.id} value={s.id}>
                    {s.name} ({s.entityType})
                  </option>
                ))}
              </select>
            </div>
          ) : null
        }
      />
      <QueryState {...query} what="the mappings" lines={8} />
      {query.data ? (
        <Editor
          key={`${query.data.stream.id}`}
          tenantId={tenantId}
          connector={query.data.connector}
          stream={query.data.stream}
          view={query.data.view}
          fields={query.data.fields}
          onSaved={query.reload}
        />
      ) : null}
    </div>
  )
}

function Editor({
  tenantId,
  connector,
  stream,
  view,
  fields,
  onSaved,
}: {
  tenantId: string
  connector: Connector
  stream: Connector['streams'][number]
  view: MappingView
  fields: SourceField[] | Error
  onSaved: () => void
}) {
  const entityType = stream.entityType
  const [rows, setRows] = useState<Row[]>(() => toRows(view.effective))
  const [saved, setSaved] = useState<FieldMapping[]>(view.effective)
  const [saving, setSaving] = useState(false)
  const [confirmReset, setConfirmReset] = useState(false)
  const show = useToastStore((s) => s.show)
  const draft = useMemo(() => toMappings(rows), [rows])
  const validation = useMemo(() => validateRows(entityType, rows), [entityType, rows])
  const valid = Object.keys(validation.rows).length === 0 && validation.missing.length === 0
  const targets = Object.keys(canonicalSchemas[entityType].shape)
  const required = requiredCanonicalFields[entityType]
  const sourceFields = Array.isArray(fields) ? fields : []
  const listId = `source-fields-${stream.id}`

  const diff = useMemo(() => {
    const before = new Map(saved.map((m) => [m.targetField, m]))
    const after = new Map(draft.map((m) => [m.targetField, m]))
    const changes: Array<{ target: string; from?: FieldMapping; to?: FieldMapping }> = []
    for (const [target, to] of after) {
      const from = before.get(target)
      if (!same(from, to)) changes.push({ target, ...(from ? { from } : {}), to })
    }
    for (const [target, from] of before) if (!after.has(target)) changes.push({ target, from })
    return changes
  }, [saved, draft])

  const update = (key: number, patch: Partial<FieldMapping>): void =>
    setRows((list) => list.map((r) => (r.key === key ? { ...r, ...patch } : r)))

  const save = async (): Promise<void> => {
    // Stored as overrides of the connector's defaults: only what differs from them.
    const defaults = new Map(view.defaults.map((m) => [m.targetField, m]))
    const overrides = draft.filter((m) => !same(defaults.get(m.targetField), m))
    setSaving(true)
    try {
      const next =
        overrides.length === 0
          ? await call('mappings:reset', {
              tenantId,
              connectorType: connector.id,
              entityType,
              stream: stream.id,
            })
          : await call('mappings:set', {
              tenantId,
              connectorType: connector.id,
              entityType,
              stream: stream.id,
              mappings: overrides,
            })
      setSaved(next.effective)
      setRows(toRows(next.effective))
      show('ok', `Mappings of ${stream.name} saved. The next sync uses them.`)
      onSaved()
    } catch (err) {
      show('bad', `Not saved: ${messageOf(err)}`)
    } finally {
      setSaving(false)
    }
  }

  const reset = async (): Promise<void> => {
    setConfirmReset(false)
    try {
      const next = await call('mappings:reset', {
        tenantId,
        connectorType: connector.id,
        entityType,
        stream: stream.id,
      })
      setSaved(next.effective)
      setRows(toRows(next.effective))
      show('ok', `Mappings of ${stream.name} reset to ${connector.name}'s defaults.`)
    } catch (err) {
      show('bad', messageOf(err))
    }
  }

  const removable = (row: Row): boolean =>
    !view.defaults.some((d) => d.targetField === row.targetField)

  return (
    <>
      <Card
        title={`${stream.name} → ${entityType}`}
        labelledBy="mapping-title"
        actions={
          <>
            <button type="button" className="button" onClick={() => setConfirmReset(true)}>
              Reset to defaults
            </button>
            <button
              type="button"
              className="button button-primary"
              disabled={!valid || diff.length === 0 || saving}
              onClick={() => void save()}
            >
              {saving
                ? 'Saving…'
                : diff.length === 0
                  ? 'Saved'
                  : `Save ${diff.length} change${diff.length === 1 ? '' : 's'}`}
            </button>
          </>
        }
      >
        {fields instanceof Error ? (
          <Callout tone="warn" title={`${connector.name}'s field list could not be read`}>
            <p>{fields.message}</p>
            <p className="muted">You can still type source field paths.</p>
          </Callout>
        ) : null}
        <p className="small">
          Required:{' '}
          {required.map((f) => (
            <Badge key={f} tone={validation.missing.includes(f) ? 'bad' : 'ok'}>
              {f}
            </Badge>
          ))}
        </p>
        <datalist id={listId}>
          {sourceFields.map((f) => (
            <option key={f.path} value={f.path}>
              {`${f.label} (${f.type}${f.custom ? ', custom' : ''})`}
            </option>
          ))}
        </datalist>
        <datalist id={`${listId}-targets`}>
          {targets.map((t) => (
            <option key={t} value={t} />
          ))}
        </datalist>
        <div className="table-wrap">
          <table className="mapping-table">
            <thead>
              <tr>
                <th>Source field</th>
                <th>Canonical field</th>
                <th>Transform</th>
                <th>
                  <span className="visually-hidden">Remove</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {rows.map((row, index) => {
                const error = validation.rows[row.key]
                const errorId = `row-${row.key}-error`
                return (
                  <tr key={row.key} data-testid={`mapping-row-${row.targetField || index}`}>
                    <td>
                      <input
                        type="text"
                        list={listId}
                        aria-label={`Source field for ${row.targetField || `row ${index + 1}`}`}
                        value={row.sourceField}
                        aria-invalid={error ? true : undefined}
                        aria-describedby={error ? errorId : undefined}
                        spellCheck={false}
                        onChange={(e) => update(row.key, { sourceField: e.target.value })}
                      />
                      {error ? (
                        <div className="error-text xsmall" id={errorId}>
                          {error}
                        </div>
                      ) : null}
                    </td>
                    <td>
                      <input
                        type="text"
                        list={`${listId}-targets`}
                        aria-label={`Canonical field of row ${index + 1}`}
                        value={row.targetField}
                        spellCheck={false}
                        readOnly={!removable(row)}
                        onChange={(e) => update(row.key, { targetField: e.target.value })}
                      />
                      {required.includes(row.targetField) ? (
                        <span className="xsmall muted">required</span>
                      ) : null}
                    </td>
                    <td>
                      <select
                        aria-label={`Transform for ${row.targetField || `row ${index + 1}`}`}
                        value={row.transform ?? 'none'}
                        onChange={(e) =>
                          update(row.key, { transform: e.target.value as Transform })
                        }
                      >
                        {transforms.map((t) => (
                          <option key={t} value={t}>
                            {t}
                          </option>
                        ))}
                      </select>
                    </td>
                    <td>
                      {removable(row) ? (
                        <button
                          type="button"
                          className="button button-ghost"
                          aria-label={`Remove the mapping to ${row.targetField || `row ${index + 1}`}`}
                          onClick={() => setRows((list) => list.filter((r) => r.key !== row.key))}
                        >
                          Remove
                        </button>
                      ) : null}
                    </td>
                  </tr>
                )
              })}
            </tbody>
          </table>
        </div>
        <div className="row">
          <button
            type="button"
            className="button"
            onClick={() =>
              setRows((list) => [
                ...list,
                { key: rowKey++, sourceField: '', targetField: '', transform: 'none' },
              ])
            }
          >
            Add a mapping
          </button>
        </div>
        {diff.length > 0 ? (
          <section aria-labelledby="diff-title" className="stack">
            <h3 id="diff-title">What Save changes</h3>
            <ul className="small" data-testid="mapping-diff">
              {diff.map((d) => (
                <li key={d.target}>
                  <code>{d.target}</code>:{' '}
                  {d.from ? (
                    <span className="diff-del">
                      {d.from.sourceField}
                      {d.from.transform && d.from.transform !== 'none'
                        ? ` (${d.from.transform})`
                        : ''}
                    </span>
                  ) : null}
                  {d.from && d.to ? ' → ' : null}
                  {d.to ? (
                    <span className="diff-add">
                      {d.to.sourceField}
                      {d.to.transform && d.to.transform !== 'none' ? ` (${d.to.transform})` : ''}
                    </span>
                  ) : (
                    ' removed'
                  )}
                </li>
              ))}
            </ul>
          </section>
        ) : null}
      </Card>
      <PreviewCard
        tenantId={tenantId}
        connector={connector}
        stream={stream}
        draft={draft}
        valid={valid}
        missing={validation.missing}
      />
      <ConfirmDialog
        open={confirmReset}
        title="Reset to the defaults?"
        confirmLabel="Reset"
        danger
        onCancel={() => setConfirmReset(false)}
        onConfirm={() => void reset()}
      >
        <p>
          Your changes to the {stream.name} mappings are removed; {connector.name}&apos;s defaults
          apply from the next sync.
        </p>
      </ConfirmDialog>
    </>
  )
}

/** Runs the draft on sample records as it changes (debounced), raw on the left, result on the right. */
function PreviewCard({
  tenantId,
  connector,
  stream,
  draft,
  valid,
  missing,
}: {
  tenantId: string
  connector: Connector
  stream: Connector['streams'][number]
  draft: FieldMapping[]
  valid: boolean
  missing: string[]
}) {
  const [preview, setPreview] = useState<{ key: string; data: Preview } | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  const [refresh, setRefresh] = useState(0)
  const draftKey = JSON.stringify(draft)
  const lastRefresh = useRef(0)

  useEffect(() => {
    if (!valid) return
    let current = true
    const timer = setTimeout(() => {
      setBusy(true)
      const fresh = refresh !== lastRefresh.current
      lastRefresh.current = refresh
      call('mappings:preview', {
        tenantId,
        connectorType: connector.id,
        entityType: stream.entityType,
        stream: stream.id,
        mappings: JSON.parse(draftKey) as FieldMapping[],
        limit: 50,
        ...(fresh ? { refresh: true } : {}),
      }).then(
        (data) => {
          if (!current) return
          setPreview({ key: draftKey, data })
          setError(null)
          setBusy(false)
        },
        (err: unknown) => {
          if (!current) return
          setError(messageOf(err))
          setBusy(false)
        },
      )
    }, 200)
    return () => {
      current = false
      clearTimeout(timer)
    }
  }, [tenantId, connector.id, stream, draftKey, valid, refresh])

  const data = preview?.data
  const usedSources = draft.map((m) => m.sourceField)
  return (
    <Card
      title="Live preview"
      labelledBy="preview-title"
      actions={
        <button
          type="button"
          className="button"
          onClick={() => setRefresh((r) => r + 1)}
          disabled={busy}
        >
          Read new samples
        </button>
      }
    >
      <p className="small muted" role="status" aria-live="polite" data-testid="preview-status">
        {!valid
          ? missing.length > 0
            ? `Map ${missing.join(', ')} to see the preview.`
            : 'Fix the marked rows to see the preview.'
          : busy && !data
            ? `Reading sample records from ${connector.name}…`
            : data
              ? `${data.rows.length} samples read ${new Date(data.fetchedAt).toLocaleTimeString()}: ${data.accepted} pass, ${data.rejected} rejected · mapped in ${formatDuration(data.durationMs)}${busy || preview?.key !== draftKey ? ' · updating…' : ''}`
              : ''}
      </p>
      {error ? (
        <Callout tone="bad" title="The preview could not run" role="alert">
          <p>{error}</p>
        </Callout>
      ) : null}
      {data?.mappingError ? (
        <Callout tone="bad" title="This draft cannot be saved" role="alert">
          <p>{data.mappingError}</p>
        </Callout>
      ) : null}
      {data && data.rows.length === 0 && !data.mappingError ? (
        <EmptyState title="No sample records">
          {connector.name} returned no {stream.name.toLowerCase()} to preview. Records appear once
          the source has some.
        </EmptyState>
      ) : null}
      {data && data.rows.length > 0 ? (
        <div className="table-wrap">
          <table data-testid="preview">
            <thead>
              <tr>
                <th style={{ width: '50%' }}>From {connector.name}</th>
                <th style={{ width: '50%' }}>Stored as {stream.entityType}</th>
              </tr>
            </thead>
            <tbody>
              {data.rows.slice(0, 20).map((row, i) => (
                <tr key={`${row.externalId ?? 'x'}-${i}`} data-testid="preview-row">
                  <td>
                    <pre className="json" tabIndex={0}>
                      {JSON.stringify(pick(row.raw, usedSources), null, 2)}
                    </pre>
                  </td>
                  <td>
                    {row.canonical ? (
                      <pre className="json" tabIndex={0} data-testid="preview-canonical">
                        {JSON.stringify(row.canonical, null, 2)}
                      </pre>
                    ) : row.deleted ? (
                      <span className="muted">Deleted in the source</span>
                    ) : null}
                    {row.rejects.map((r) => (
                      <div key={r.field} className="reject-reason" data-testid="preview-reject">
                        Rejected: {r.field}: {r.reason}
                      </div>
                    ))}
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

/** The raw fields the draft reads, in its order; the full record when none of them is there. */
function pick(raw: Record<string, unknown>, paths: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const path of paths) {
    if (!path) continue
    let value: unknown = raw
    for (const part of path.split('.')) {
      value =
        value && typeof value === 'object' ? (value as Record<string, unknown>)[part] : undefined
    }
    out[path] = value === undefined ? null : value
  }
  return Object.keys(out).length > 0 ? out : raw
}
