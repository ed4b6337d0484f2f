import { useEffect, useRef } from 'react'

/**
 * How often a page that shows connections reads them again while it is open: syncs run on their
 * schedule (in this agent or another worker) without telling the app, and their outcome shows
 * up at most this long after they end.
 */
const REFRESH_MS = 30_000

/**
 * Calls `refresh` every `ms` while the window is visible (a hidden window reads nothing, and
 * catches up as soon as it is shown again).
 */
export function useRefresh(refresh: () => void, ms = REFRESH_MS): void {
  const refreshRef = useRef(refresh)
  refreshRef.current = refresh
  useEffect(() => {
    let missed = false
    const timer = setInterval(() => {
      if (document.visibilityState === 'hidden') missed = true
      else refreshRef.current()
    }, ms)
    const onVisible = (): void => {
      if (document.visibilityState === 'visible' && missed) {
        missed = false
        refreshRef.current()
      }
    }
    document.addEventListener('visibilitychange', onVisible)
    return () => {
      clearInterval(timer)
      document.removeEventListener('visibilitychange', onVisible)
    }
  }, [ms])
}
