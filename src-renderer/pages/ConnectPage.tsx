import { useEffect, useMemo, useRef, useState } from 'react'
import type { IpcEvent, IpcOutput } from '../../shared/ipc.js'
import {
  ConfigForm,
  configFromValues,
  formFields,
  initialValues,
  missingFields,
  type FormValues,
} from '../components/ConfigForm.js'
import { Badge, Callout, Card, PageHeader, QueryState } from '../components/ui.js'
import { connectorGuides, loadConnection } from '../lib/connectors.js'
import { formatDuration } from '../lib/format.js'
import { call, CallError, messageOf, onEvent } from '../lib/gtm.js'
import { useQuery } from '../lib/use-query.js'
import { useNavStore } from '../stores/use-nav-store.js'
import { useToastStore } from '../stores/use-toast-store.js'

type Connector = IpcOutput<'connectors:list'>[number]
type Connection = IpcOutput<'connections:list'>[number]
type SetupCheck = IpcOutput<'connections:check'>['checks'][number]
type SignInState = IpcEvent<'signin:state'>

/** Config keys a sign-in obtains itself, never typed by the admin. */
const SIGN_IN_HIDDEN = ['instanceUrl', 'refreshToken', 'accessToken']

/** Screen 2: connect (or reconnect) one connector, by its form or a browser sign-in. */
export function ConnectPage({
  tenantId,
  connectorType,
}: {
  tenantId: string
  connectorType: string
}) {
  const query = useQuery(`connect/${tenantId}/${connectorType}`, () =>
    loadConnection(tenantId, connectorType),
  )
  const go = useNavStore((s) => s.go)
  const name = query.data?.connector.name ?? 'connector'
  const reconnecting = query.data?.connection !== undefined
  return (
    <div className="page">
      <PageHeader
        back={{ label: 'Connectors', onClick: () => go({ page: 'connectors' }) }}
        title={query.data ? `${reconnecting ? 'Reconnect' : 'Connect'} ${name}` : 'Connect'}
        description={
          query.data?.connector.signIn
            ? 'You sign in through your browser; the app never sees your password.'
            : 'Paste the key; the app checks it against the source before anything is saved.'
        }
      />
      <QueryState {...query} what="the connector" />
      {query.data ? (
        <div className="grid grid-2">
          {query.data.connector.signIn ? (
            <SignInPanel tenantId={tenantId} {...query.data} />
          ) : (
            <ApiKeyPanel tenantId={tenantId} {...query.data} />
          )}
          <GuideCard connector={query.data.connector} />
        </div>
      ) : null}
    </div>
  )
}

function GuideCard({ connector }: { connector: Connector }) {
  const guide = connectorGuides[connector.id]
  return (
    <Card title="Where to find this" labelledBy="guide-title">
      <p className="small">{guide?.text ?? `See ${connector.name}'s documentation.`}</p>
      {guide ? (
        <a href={guide.url} target="_blank" rel="noreferrer">
          {connector.name} setup guide (opens in your browser)
        </a>
      ) : null}
      <dl className="facts">
        <dt>Reads</dt>
        <dd>{connector.dataTypes.join(', ')}</dd>
        <dt>Sign-in</dt>
        <dd>{connector.signIn ? 'Browser (OAuth / admin consent)' : 'API key'}</dd>
        <dt>Webhooks</dt>
        <dd>{connector.webhooks ? 'Yes: events arrive as they happen' : 'No: scheduled syncs'}</dd>
      </dl>
    </Card>
  )
}

function useFormState(connector: Connector, connection: Connection | undefined, signIn: boolean) {
  const fields = useMemo(
    () =>
      signIn
        ? formFields(connector.signInSchema ?? {}, connector.secretConfigKeys, SIGN_IN_HIDDEN)
        : formFields(connector.configSchema, connector.secretConfigKeys),
    [connector, signIn],
  )
  const [values, setValues] = useState<FormValues>(() =>
    initialValues(fields, connection?.config ?? {}),
  )
  const [errors, setErrors] = useState<Record<string, string>>({})
  const change = (key: string, value: string | boolean): void => {
    setValues((v) => ({ ...v, [key]: value }))
    setErrors((e) => {
      const { [key]: _gone, ...rest } = e
      return rest
    })
  }
  return { fields, values, errors, setErrors, change }
}

/** Names the form field an agent error is about ("clientId" in `"clientId" is required`). */
function fieldErrors(message: string, keys: string[]): Record<string, string> {
  const errors: Record<string, string> = {}
  for (const key of keys) if (message.includes(`"${key}"`)) errors[key] = message
  return errors
}

function ApiKeyPanel({
  tenantId,
  connector,
  connection,
}: {
  tenantId: string
  connector: Connector
  connection: Connection | undefined
}) {
  const form = useFormState(connector, connection, false)
  const go = useNavStore((s) => s.go)
  const show = useToastStore((s) => s.show)
  const [checks, setChecks] = useState<SetupCheck[] | null>(null)
  const [total, setTotal] = useState(0)
  const [busy, setBusy] = useState<null | 'checking' | 'saving'>(null)
  const [failure, setFailure] = useState<string | null>(null)

  useEffect(
    () =>
      onEvent('connect:check', (event) => {
        if (event.tenantId !== tenantId || event.connectorType !== connector.id) return
        setTotal(event.total)
        setChecks((list) => {
          const next = [...(list ?? [])]
          next[event.index] = event.check
          return next
        })
      }),
    [tenantId, connector.id],
  )

  const submit = async (): Promise<void> => {
    const missing = missingFields(form.fields, form.values)
    form.setErrors(missing)
    setFailure(null)
    if (Object.keys(missing).length > 0) {
      document.getElementById(`cfg-${Object.keys(missing)[0]}`)?.focus()
      return
    }
    const config = configFromValues(form.fields, form.values)
    setBusy('checking')
    setChecks([])
    try {
      const report = await call('connections:check', {
        tenantId,
        connectorType: connector.id,
        config,
      })
      setChecks(report.checks)
      setTotal(report.checks.length)
      if (!report.ok) {
        const settings = report.checks.find((c) => c.id === 'settings' && c.status === 'failed')
        if (settings)
          form.setErrors(
            fieldErrors(
              settings.message,
              form.fields.map((f) => f.key),
            ),
          )
        setBusy(null)
        return
      }
      setBusy('saving')
      await call('connections:connect', { tenantId, connectorType: connector.id, config })
      show(
        'ok',
        `${connector.name} connected. The first sync starts on its schedule, or now from its page.`,
      )
      go({ page: 'connector', connectorType: connector.id, tab: 'overview' })
    } catch (err) {
      setFailure(messageOf(err))
      if (err instanceof CallError) {
        form.setErrors(
          fieldErrors(
            err.message,
            form.fields.map((f) => f.key),
          ),
        )
      }
      setBusy(null)
    }
  }

  return (
    <Card title={`${connector.name} settings`} labelledBy="settings-title">
      <form
        noValidate
        onSubmit={(e) => {
          e.preventDefault()
          void submit()
        }}
      >
        <ConfigForm
          idPrefix="cfg"
          fields={form.fields}
          values={form.values}
          errors={form.errors}
          onChange={form.change}
          reconnecting={connection !== undefined}
          footer={
            <div className="row">
              <button type="submit" className="button button-primary" disabled={busy !== null}>
                {busy === 'checking'
                  ? 'Checking…'
                  : busy === 'saving'
                    ? 'Saving…'
                    : connection
                      ? 'Check and reconnect'
                      : 'Check and connect'}
              </button>
              <button
                type="button"
                className="button"
                onClick={() => go({ page: 'connectors' })}
                disabled={busy !== null}
              >
                Cancel
              </button>
            </div>
          }
        />
      </form>
      {checks !== null ? (
        <SetupChecks checks={checks} total={total} running={busy === 'checking'} />
      ) : null}
      {failure ? (
        <Callout tone="bad" title="Not connected" role="alert">
          <p>{failure}</p>
        </Callout>
      ) : null}
    </Card>
  )
}

const checkIcon: Record<SetupCheck['status'], { symbol: string; tone: string; word: string }> = {
  passed: { symbol: '✓', tone: 'tone-ok', word: 'passed' },
  failed: { symbol: '!', tone: 'tone-bad', word: 'failed' },
  skipped: { symbol: '–', tone: 'tone-idle', word: 'skipped' },
}

/** The setup checks as they arrive, one by one, each with what to do when it failed. */
export function SetupChecks({
  checks,
  total,
  running,
}: {
  checks: Array<SetupCheck | undefined>
  total: number
  running: boolean
}) {
  const rows = Array.from({ length: Math.max(total, checks.length) }, (_, i) => checks[i])
  return (
    <section aria-labelledby="checks-title" className="stack">
      <h3 id="checks-title">Setup checks</h3>
      <ol className="checks" aria-live="polite">
        {rows.map((check, i) =>
          check ? (
            <li key={check.id} className="check" data-testid={`check-${check.id}`}>
              <span className={`check-icon ${checkIcon[check.status].tone}`} aria-hidden="true">
                {checkIcon[check.status].symbol}
              </span>
              <div className="stack" style={{ gap: 2 }}>
                <strong>
                  {check.label}
                  <span className="visually-hidden">: {checkIcon[check.status].word}</span>
                </strong>
                <span className="muted">{check.message}</span>
                {check.hint ? <span>{check.hint}</span> : null}
              </div>
              <span className="xsmall muted">
                {check.latencyMs !== null ? formatDuration(check.latencyMs) : ''}
              </span>
            </li>
          ) : (
            <li key={`pending-${i}`} className="check">
              <span className="check-icon tone-idle" aria-hidden="true">
                …
              </span>
              <span className="muted">{running ? 'Checking…' : 'Not run'}</span>
              <span />
            </li>
          ),
        )}
        {running && rows.length === 0 ? (
          <li className="check">
            <span className="check-icon tone-info" aria-hidden="true">
              …
            </span>
            <span className="muted">Starting the checks…</span>
            <span />
          </li>
        ) : null}
      </ol>
    </section>
  )
}

function SignInPanel({
  tenantId,
  connector,
  connection,
}: {
  tenantId: string
  connector: Connector
  connection: Connection | undefined
}) {
  const form = useFormState(connector, connection, true)
  const go = useNavStore((s) => s.go)
  const show = useToastStore((s) => s.show)
  const [state, setState] = useState<SignInState | null>(null)
  const [busy, setBusy] = useState(false)
  const [failure, setFailure] = useState<string | null>(null)
  const [terms, setTerms] = useState<'unknown' | 'accepting' | 'accepted'>('unknown')
  const cancelRef = useRef<HTMLButtonElement>(null)
  const needsTerms = connector.id === 'o365'
  const action =
    connector.authMethod === 'msal' ? 'Grant admin consent' : `Sign in with ${connector.name}`

  useEffect(
    () =>
      onEvent('signin:state', (event) => {
        if (event.connectorType !== connector.id) return
        setState(event)
        if (event.phase === 'waiting') cancelRef.current?.focus()
      }),
    [connector.id],
  )

  const accept = async (): Promise<void> => {
    setTerms('accepting')
    try {
      await call('agreements:accept', { tenantId, connectorType: connector.id })
      setTerms('accepted')
    } catch (err) {
      setTerms('unknown')
      setFailure(messageOf(err))
    }
  }

  const begin = async (): Promise<void> => {
    const missing = missingFields(form.fields, form.values)
    form.setErrors(missing)
    setFailure(null)
    if (Object.keys(missing).length > 0) return
    setBusy(true)
    setState(null)
    try {
      await call('signin:begin', {
        tenantId,
        connectorType: connector.id,
        config: configFromValues(form.fields, form.values),
      })
      show('ok', `${connector.name} connected.`)
      go({ page: 'connector', connectorType: connector.id, tab: 'overview' })
    } catch (err) {
      setFailure(messageOf(err))
      if (err instanceof CallError) {
        form.setErrors(
          fieldErrors(
            err.message,
            form.fields.map((f) => f.key),
          ),
        )
      }
    } finally {
      setBusy(false)
    }
  }

  const waiting =
    busy && (state === null || state.phase === 'waiting' || state.phase === 'exchanging')

  return (
    <Card title={`${connector.name} sign-in`} labelledBy="signin-title">
      {needsTerms ? (
        <Callout tone={terms === 'accepted' ? 'ok' : 'info'} title="Data-processing terms">
          <p>
            Microsoft 365 data (calendar events and email metadata, never bodies) is processed under
            your organisation&apos;s data-processing terms. Accept them for this tenant before the
            first sync.
          </p>
          <div className="row">
            {terms === 'accepted' ? (
              <Badge tone="ok">Accepted</Badge>
            ) : (
              <button
                type="button"
                className="button"
                onClick={() => void accept()}
                disabled={terms === 'accepting'}
              >
                {terms === 'accepting' ? 'Accepting…' : 'Accept the terms'}
              </button>
            )}
          </div>
        </Callout>
      ) : null}
      {waiting ? (
        <Callout tone="info" title="Waiting for your browser" role="status">
          {state?.phase === 'exchanging' ? (
            <p>Signed in. Storing the connection…</p>
          ) : (
            <p>
              Your browser opened {connector.name}&apos;s sign-in page. Finish there and come back;
              this page continues by itself.
              {state?.phase === 'waiting' ? (
                <>
                  {' '}
                  It waits until {new Date(state.expiresAt).toLocaleTimeString()}. Nothing opened?{' '}
                  <a href={state.url} target="_blank" rel="noreferrer">
                    Open the sign-in page
                  </a>
                  .
                </>
              ) : null}
            </p>
          )}
          <div className="row">
            <button
              ref={cancelRef}
              type="button"
              className="button"
              onClick={() => void call('signin:cancel')}
            >
              Cancel sign-in
            </button>
          </div>
        </Callout>
      ) : null}
      <form
        noValidate
        onSubmit={(e) => {
          e.preventDefault()
          void begin()
        }}
      >
        <ConfigForm
          idPrefix="cfg"
          fields={form.fields}
          values={form.values}
          errors={form.errors}
          onChange={form.change}
          reconnecting={connection !== undefined}
          footer={
            <div className="row">
              <button type="submit" className="button button-primary" disabled={busy}>
                {action}
              </button>
              {busy ? null : (
                <button type="button" className="button" onClick={() => go({ page: 'connectors' })}>
                  Back
                </button>
              )}
            </div>
          }
        />
      </form>
      {failure ? (
        <Callout tone="bad" title="Not connected" role="alert">
          <p>{failure}</p>
        </Callout>
      ) : null}
    </Card>
  )
}
