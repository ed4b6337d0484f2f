import { useEffect } from 'react'
import { Toasts } from './components/Toasts.js'
import { AuditPage } from './pages/AuditPage.js'
import { ConnectPage } from './pages/ConnectPage.js'
import { ConnectorDetailPage } from './pages/ConnectorDetailPage.js'
import { ConnectorsPage } from './pages/ConnectorsPage.js'
import { DiagnosticsPage } from './pages/DiagnosticsPage.js'
import { MappingsPage } from './pages/MappingsPage.js'
import { Callout, EmptyState, Skeleton } from './components/ui.js'
import { useAppStore } from './stores/use-app-store.js'
import { useNavStore, type Route } from './stores/use-nav-store.js'
import { useSyncStore } from './stores/use-sync-store.js'
import { useTenantStore } from './stores/use-tenant-store.js'

const productName = 'GTM Clarity Connect'

const sections: ReadonlyArray<{ page: Route['page']; label: string; route: Route }> = [
  { page: 'connectors', label: 'Connectors', route: { page: 'connectors' } },
  { page: 'diagnostics', label: 'Diagnostics', route: { page: 'diagnostics' } },
  { page: 'audit', label: 'Audit log', route: { page: 'audit' } },
]

/** Which section a page belongs to, for the sidebar. */
const sectionOf = (route: Route): Route['page'] =>
  route.page === 'diagnostics' || route.page === 'audit' ? route.page : 'connectors'

/** The app shell: sidebar (sections, tenant switcher, agent state) and the page of the route. */
export function App() {
  const start = useAppStore((s) => s.start)
  const listen = useSyncStore((s) => s.listen)
  const loadTenants = useTenantStore((s) => s.load)

  useEffect(() => start(), [start])
  useEffect(() => listen(), [listen])
  useEffect(() => {
    void loadTenants()
  }, [loadTenants])

  return (
    <div className="shell">
      <Sidebar />
      <main className="content" id="main">
        <CurrentPage />
      </main>
      <Toasts />
    </div>
  )
}

function Sidebar() {
  const route = useNavStore((s) => s.route)
  const go = useNavStore((s) => s.go)
  const info = useAppStore((s) => s.info)
  const agent = useAppStore((s) => s.agent)
  const current = sectionOf(route)
  return (
    <aside className="sidebar" aria-label="App">
      <div className="brand">
        <span className="brand-mark" aria-hidden="true" />
        <span>{info?.name ?? productName}</span>
      </div>
      <TenantSwitcher />
      <nav className="nav" aria-label="Sections">
        {sections.map((section) => (
          <button
            key={section.page}
            type="button"
            className="nav-item"
            aria-current={current === section.page ? 'page' : undefined}
            onClick={() => go(section.route)}
          >
            {section.label}
          </button>
        ))}
      </nav>
      <div className="sidebar-footer">
        <span>
          Agent:{' '}
          <strong data-testid="agent-state">
            {agent ? agentStateLabel(agent.state) : 'checking…'}
          </strong>
        </span>
        {info ? <span data-testid="app-version">Version {info.version}</span> : null}
      </div>
    </aside>
  )
}

function agentStateLabel(state: string): string {
  switch (state) {
    case 'ready':
      return 'running'
    case 'restarting':
      return 'restarting…'
    case 'crashed':
      return 'stopped after repeated crashes'
    default:
      return state
  }
}

function TenantSwitcher() {
  const tenants = useTenantStore((s) => s.tenants)
  const tenantId = useTenantStore((s) => s.tenantId)
  const select = useTenantStore((s) => s.select)
  const go = useNavStore((s) => s.go)
  const route = useNavStore((s) => s.route)
  if (!tenants || tenants.length === 0) return null
  return (
    <div className="field">
      <label htmlFor="tenant">Tenant</label>
      <select
        id="tenant"
        value={tenantId ?? ''}
        onChange={(e) => {
          // A connection page names a connection of the old tenant: go back to the list.
          if (route.page !== 'diagnostics' && route.page !== 'audit') go({ page: 'connectors' })
          select(e.target.value)
        }}
      >
        {tenants.map((t) => (
          <option key={t.id} value={t.id}>
            {t.name}
          </option>
        ))}
      </select>
    </div>
  )
}

function CurrentPage() {
  const route = useNavStore((s) => s.route)
  const tenants = useTenantStore((s) => s.tenants)
  const tenantId = useTenantStore((s) => s.tenantId)
  const error = useTenantStore((s) => s.error)
  const load = useTenantStore((s) => s.load)

  if (error) {
    return (
      <div className="page">
        <Callout tone="bad" title="The agent did not answer" role="alert">
          <p>{error}</p>
          <p>Open Diagnostics to see which part is down, or try again.</p>
          <div className="row">
            <button type="button" className="button" onClick={() => void load()}>
              Try again
            </button>
          </div>
        </Callout>
        <DiagnosticsPage tenantId={null} />
      </div>
    )
  }
  if (!tenants) return <Skeleton lines={6} label="Loading tenants" />
  if (!tenantId) {
    return (
      <div className="page">
        <EmptyState title="No tenant yet">
          Create one with <code>gtm-agent tenants create --id acme --name &quot;Acme&quot;</code>,
          then reopen the app.
        </EmptyState>
      </div>
    )
  }
  // Keyed by tenant: a switch mounts fresh pages, so nothing of the old tenant survives a frame.
  switch (route.page) {
    case 'connectors':
      return <ConnectorsPage key={tenantId} tenantId={tenantId} />
    case 'connect':
      return <ConnectPage key={tenantId} tenantId={tenantId} connectorType={route.connectorType} />
    case 'connector':
      return (
        <ConnectorDetailPage
          key={`${tenantId}/${route.connectorType}`}
          tenantId={tenantId}
          connectorType={route.connectorType}
          tab={route.tab}
        />
      )
    case 'mappings':
      return (
        <MappingsPage
          key={`${tenantId}/${route.connectorType}`}
          tenantId={tenantId}
          connectorType={route.connectorType}
          {...(route.stream ? { stream: route.stream } : {})}
        />
      )
    case 'diagnostics':
      return <DiagnosticsPage key={tenantId} tenantId={tenantId} />
    case 'audit':
      return <AuditPage key={tenantId} tenantId={tenantId} />
  }
}
