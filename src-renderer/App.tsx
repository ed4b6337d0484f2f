import { useEffect } from 'react'
import { useAppStore } from './stores/use-app-store.js'

const productName = 'GTM Clarity Connect'

/** The app shell. Connection pages arrive in later issues. */
export function App() {
  const info = useAppStore((state) => state.info)
  const error = useAppStore((state) => state.error)
  const loadInfo = useAppStore((state) => state.loadInfo)

  useEffect(() => {
    loadInfo().catch((err: unknown) => console.error('Could not load app info:', err))
  }, [loadInfo])

  return (
    <main style={{ padding: '2rem', maxWidth: '48rem', margin: '0 auto' }}>
      <h1>{info?.name ?? productName}</h1>
      <p>Connections will appear here.</p>
      <footer style={{ opacity: 0.7, fontSize: '0.875rem' }}>
        {error ? <span role="alert">{error.message}</span> : null}
        {info ? <span data-testid="app-version">Version {info.version}</span> : null}
      </footer>
    </main>
  )
}
