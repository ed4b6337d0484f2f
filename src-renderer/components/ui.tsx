import { useEffect, useRef, type ReactNode } from 'react'

export type Tone = 'ok' | 'warn' | 'bad' | 'info' | 'idle'

export function Badge({ tone, children }: { tone: Tone; children: ReactNode }) {
  return <span className={`badge tone-${tone}`}>{children}</span>
}

export function Callout({
  tone,
  title,
  children,
  role,
}: {
  tone: Tone
  title: string
  children?: ReactNode
  role?: 'alert' | 'status'
}) {
  return (
    <div className={`callout tone-${tone}`} role={role}>
      <strong>{title}</strong>
      {children}
    </div>
  )
}

/** What an empty pane says: what it would hold, and what to do next. */
export function EmptyState({
  title,
  children,
  action,
}: {
  title: string
  children?: ReactNode
  action?: ReactNode
}) {
  return (
    <div className="empty">
      <h3>{title}</h3>
      {children ? <p>{children}</p> : null}
      {action}
    </div>
  )
}

/** Placeholder lines while data loads, in the shape of what is coming. */
export function Skeleton({ lines = 3, label = 'Loading' }: { lines?: number; label?: string }) {
  return (
    <div className="stack" aria-busy="true" role="status" aria-label={label}>
      {Array.from({ length: lines }, (_, i) => (
        <div key={i} className="skeleton" style={{ width: `${90 - i * 12}%` }} />
      ))}
    </div>
  )
}

export function Card({
  title,
  actions,
  children,
  className,
  labelledBy,
}: {
  title?: ReactNode
  actions?: ReactNode
  children: ReactNode
  className?: string
  labelledBy?: string
}) {
  return (
    <section className={`card ${className ?? ''}`} aria-labelledby={labelledBy}>
      {title || actions ? (
        <div className="card-header">
          {typeof title === 'string' ? <h2 id={labelledBy}>{title}</h2> : title}
          {actions ? <div className="row">{actions}</div> : null}
        </div>
      ) : null}
      {children}
    </section>
  )
}

export function PageHeader({
  title,
  description,
  back,
  actions,
}: {
  title: ReactNode
  description?: ReactNode
  back?: { label: string; onClick: () => void }
  actions?: ReactNode
}) {
  return (
    <header className="page-header">
      <div className="stack">
        {back ? (
          <button type="button" className="breadcrumb" onClick={back.onClick}>
            ← {back.label}
          </button>
        ) : null}
        <h1>{title}</h1>
        {description ? <p>{description}</p> : null}
      </div>
      {actions ? <div className="row">{actions}</div> : null}
    </header>
  )
}

export function ProgressBar({ value, label }: { value: number | null; label: string }) {
  if (value === null) {
    return (
      <div className="progress indeterminate" role="progressbar" aria-label={label}>
        <span />
      </div>
    )
  }
  const pct = Math.max(0, Math.min(100, value * 100))
  return (
    <div
      className="progress"
      role="progressbar"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={Math.round(pct)}
    >
      <span style={{ width: `${pct}%` }} />
    </div>
  )
}

export function Tabs<T extends string>({
  tabs,
  selected,
  onSelect,
  label,
}: {
  tabs: ReadonlyArray<{ id: T; label: string }>
  selected: T
  onSelect: (id: T) => void
  label: string
}) {
  const refs = useRef<Array<HTMLButtonElement | null>>([])
  const move = (index: number): void => {
    const next = (index + tabs.length) % tabs.length
    const tab = tabs[next]
    if (!tab) return
    onSelect(tab.id)
    refs.current[next]?.focus()
  }
  return (
    <div className="tabs" role="tablist" aria-label={label}>
      {tabs.map((tab, index) => (
        <button
          key={tab.id}
          ref={(el) => {
            refs.current[index] = el
          }}
          type="button"
          role="tab"
          id={`tab-${tab.id}`}
          aria-selected={tab.id === selected}
          aria-controls={`panel-${tab.id}`}
          tabIndex={tab.id === selected ? 0 : -1}
          className="tab"
          onClick={() => onSelect(tab.id)}
          onKeyDown={(e) => {
            if (e.key === 'ArrowRight') move(index + 1)
            if (e.key === 'ArrowLeft') move(index - 1)
          }}
        >
          {tab.label}
        </button>
      ))}
    </div>
  )
}

/**
 * A confirmation for what cannot be undone in one click (disconnect, a full re-read). The native
 * <dialog> traps focus and closes on Escape; the safe choice has the focus.
 */
export function ConfirmDialog({
  open,
  title,
  children,
  confirmLabel,
  danger,
  onConfirm,
  onCancel,
}: {
  open: boolean
  title: string
  children: ReactNode
  confirmLabel: string
  danger?: boolean
  onConfirm: () => void
  onCancel: () => void
}) {
  const ref = useRef<HTMLDialogElement>(null)
  useEffect(() => {
    const dialog = ref.current
    if (!dialog) return
    if (open && !dialog.open) dialog.showModal()
    if (!open && dialog.open) dialog.close()
  }, [open])
  return (
    <dialog ref={ref} aria-labelledby="confirm-title" onClose={onCancel}>
      <div className="stack-lg">
        <h2 id="confirm-title">{title}</h2>
        <div className="small">{children}</div>
        <div className="row" style={{ justifyContent: 'flex-end' }}>
          <button type="button" className="button" onClick={onCancel} autoFocus>
            Cancel
          </button>
          <button
            type="button"
            className={danger ? 'button button-danger button-solid' : 'button button-primary'}
            onClick={onConfirm}
          >
            {confirmLabel}
          </button>
        </div>
      </div>
    </dialog>
  )
}

/** The outcome of a query: a skeleton while it loads, the error with Retry when it failed. */
export function QueryState({
  error,
  loading,
  reload,
  lines,
  what,
}: {
  error: Error | undefined
  loading: boolean
  reload: () => void
  lines?: number
  what: string
}) {
  if (error) {
    return (
      <Callout tone="bad" title={`Could not load ${what}`} role="alert">
        <p>{error.message}</p>
        <div>
          <button type="button" className="button" onClick={reload}>
            Try again
          </button>
        </div>
      </Callout>
    )
  }
  if (loading) return <Skeleton lines={lines ?? 3} label={`Loading ${what}`} />
  return null
}
