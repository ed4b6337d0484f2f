import { useState } from 'react'
import type { IpcOutput } from '../../shared/ipc.js'
import { formatValue } from '../lib/format.js'
import { call, messageOf } from '../lib/gtm.js'
import { useQuery } from '../lib/use-query.js'
import { useToastStore } from '../stores/use-toast-store.js'
import { Badge, Callout, Card, ConfirmDialog, EmptyState, QueryState } from './ui.js'

type Connector = IpcOutput<'connectors:list'>[number]
type Settings = IpcOutput<'writeback:list'>[number]
type Preview = IpcOutput<'writeback:preview'>

/**
 * Scores written back to the source: the settings per entity, and a dry run of what the queued
 * items would change, which an admin sees before turning writeback on.
 */
export function WritebackPanel({
  tenantId,
  connector,
}: {
  tenantId: string
  connector: Connector
}) {
  const target = { tenantId, connectorType: connector.id }
  const settings = useQuery(`writeback/${tenantId}/${connector.id}`, () =>
    call('writeback:list', target),
  )
  const [preview, setPreview] = useState<Preview | null>(null)
  const [previewError, setPreviewError] = useState<string | null>(null)
  const [loadingPreview, setLoadingPreview] = useState(false)
  const [enabling, setEnabling] = useState<Settings | null>(null)
  const show = useToastStore((s) => s.show)

  const runPreview = async (): Promise<void> => {
    setLoadingPreview(true)
    setPreviewError(null)
    try {
      setPreview(await call('writeback:preview', { ...target, limit: 50 }))
    } catch (err) {
      setPreviewError(messageOf(err))
    } finally {
      setLoadingPreview(false)
    }
  }

  const setEnabled = async (entity: Settings, enabled: boolean): Promise<void> => {
    setEnabling(null)
    try {
      await call('writeback:set', { ...target, entityType: entity.entityType, enabled })
      show('ok', `Writeback of ${entity.entityType} records ${enabled ? 'enabled' : 'disabled'}.`)
      settings.reload()
    } catch (err) {
      show('bad', messageOf(err))
    }
  }

  return (
    <div className="stack-lg">
      <Card title="Writeback settings" labelledBy="wb-settings-title">
        <p className="small muted">
          Scores computed from your data are written to these {connector.name} fields. Run the dry
          run first: it reads the current values and writes nothing.
        </p>
        <QueryState {...settings} what="writeback settings" />
        {settings.data ? (
          <div className="table-wrap">
            <table>
              <thead>
                <tr>
                  <th>Records</th>
                  <th>Fields written</th>
                  <th>State</th>
                  <th>
                    <span className="visually-hidden">Action</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {settings.data.map((entity) => (
                  <tr key={entity.entityType}>
                    <td>{entity.entityType}</td>
                    <td className="small">
                      {entity.fieldMap.map((m) => (
                        <div key={m.canonicalField}>
                          <code>{m.canonicalField}</code> → <code>{m.targetField}</code>
                        </div>
                      ))}
                      {entity.isDefault ? <span className="muted">defaults</span> : null}
                    </td>
                    <td>
                      <Badge tone={entity.enabled ? 'ok' : 'idle'}>
                        {entity.enabled ? 'On' : 'Off'}
                      </Badge>
                    </td>
                    <td>
                      {entity.enabled ? (
                        <button
                          type="button"
                          className="button"
                          onClick={() => void setEnabled(entity, false)}
                        >
                          Turn off
                        </button>
                      ) : (
                        <button
                          type="button"
                          className="button"
                          disabled={preview === null}
                          title={preview === null ? 'Run the dry run first' : undefined}
                          onClick={() => setEnabling(entity)}
                        >
                          Turn on…
                        </button>
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : null}
      </Card>
      <Card
        title="Dry run"
        labelledBy="wb-preview-title"
        actions={
          <button
            type="button"
            className="button button-primary"
            onClick={() => void runPreview()}
            disabled={loadingPreview}
          >
            {loadingPreview ? 'Reading current values…' : preview ? 'Run again' : 'Run dry run'}
          </button>
        }
      >
        {previewError ? (
          <Callout tone="bad" title="The dry run failed" role="alert">
            <p>{previewError}</p>
          </Callout>
        ) : null}
        {preview === null && !previewError ? (
          <p className="small muted">
            Shows, for each queued update, the value in {connector.name} now and the value it would
            get.
          </p>
        ) : null}
        {preview && preview.items.length === 0 ? (
          <EmptyState title="Nothing queued">
            Updates are queued when scores change; the dry run shows them once there are some.
          </EmptyState>
        ) : null}
        {preview && preview.items.length > 0 ? (
          <>
            <p className="small" data-testid="wb-queued">
              {preview.queued} updates queued; showing {preview.items.length}.
            </p>
            <div className="table-wrap">
              <table data-testid="wb-preview">
                <thead>
                  <tr>
                    <th>Record</th>
                    <th>Field</th>
                    <th>Now</th>
                    <th>Would become</th>
                  </tr>
                </thead>
                <tbody>
                  {preview.items.flatMap((item) =>
                    item.error || !item.found || item.changes.length === 0
                      ? [
                          <tr key={`${item.externalId}`}>
                            <td className="mono">{item.externalId}</td>
                            <td
                              colSpan={3}
                              className={item.error || !item.found ? 'reject-reason' : 'muted'}
                            >
                              {item.error ??
                                (!item.found
                                  ? `Not found in ${connector.name}.`
                                  : 'Already up to date.')}
                            </td>
                          </tr>,
                        ]
                      : item.changes.map((change, i) => (
                          <tr key={`${item.externalId}/${change.field}`}>
                            <td className="mono">
                              {i === 0 ? `${item.objectType ?? ''} ${item.externalId}` : ''}
                            </td>
                            <td>
                              <code>{change.field}</code>
                            </td>
                            <td className="diff-del">{formatValue(change.from)}</td>
                            <td className="diff-add">{formatValue(change.to)}</td>
                          </tr>
                        )),
                  )}
                </tbody>
              </table>
            </div>
          </>
        ) : null}
      </Card>
      <ConfirmDialog
        open={enabling !== null}
        title={`Turn on writeback of ${enabling?.entityType ?? ''} records?`}
        confirmLabel="Turn on"
        onCancel={() => setEnabling(null)}
        onConfirm={() => enabling && void setEnabled(enabling, true)}
      >
        <p>
          {connector.name} fields are updated as scores change, starting with the{' '}
          {preview?.queued ?? 0} queued updates in the dry run.
        </p>
      </ConfirmDialog>
    </div>
  )
}
