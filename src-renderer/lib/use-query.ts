import { useCallback, useEffect, useRef, useState } from 'react'
import type { CallError } from './gtm.js'

export interface Query<T> {
  /** The data loaded for the current key; undefined while it loads (never another key's). */
  data: T | undefined
  error: CallError | Error | undefined
  loading: boolean
  reload: () => void
}

type Loaded<T> = { key: string; data?: T; error?: CallError | Error }

/**
 * Loads data for a key (which names the tenant, the connection, the filters…). What it returns
 * always belongs to the current key: after a switch of tenant the previous tenant's rows are gone
 * in the same render, not a frame later, and a late answer for an old key is dropped.
 * A null key loads nothing.
 */
export function useQuery<T>(key: string | null, load: () => Promise<T>): Query<T> {
  const [loaded, setLoaded] = useState<Loaded<T> | null>(null)
  const [generation, setGeneration] = useState(0)
  const loadRef = useRef(load)
  loadRef.current = load

  useEffect(() => {
    if (key === null) return
    let current = true
    loadRef.current().then(
      (data) => {
        if (current) setLoaded({ key, data })
      },
      (error: unknown) => {
        if (current)
          setLoaded({ key, error: error instanceof Error ? error : new Error(String(error)) })
      },
    )
    return () => {
      current = false
    }
  }, [key, generation])

  const reload = useCallback(() => setGeneration((g) => g + 1), [])
  const mine = loaded !== null && loaded.key === key ? loaded : undefined
  return {
    data: mine?.data,
    error: mine?.error,
    loading: key !== null && mine === undefined,
    reload,
  }
}
