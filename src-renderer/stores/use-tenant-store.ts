import { create } from 'zustand'
import type { IpcOutput } from '../../shared/ipc.js'
import { call, messageOf } from '../lib/gtm.js'

type Tenant = IpcOutput<'tenants:list'>[number]

const STORAGE_KEY = 'gtm.tenant'

type TenantState = {
  tenants: Tenant[] | null
  /** The tenant every screen is scoped to. */
  tenantId: string | null
  error: string | null
  load: () => Promise<void>
  select: (tenantId: string) => void
}

function remembered(): string | null {
  try {
    return window.localStorage.getItem(STORAGE_KEY)
  } catch {
    return null
  }
}

export const useTenantStore = create<TenantState>()((set, get) => ({
  tenants: null,
  tenantId: null,
  error: null,
  load: async () => {
    try {
      const tenants = await call('tenants:list')
      const wanted = get().tenantId ?? remembered()
      const tenantId = tenants.some((t) => t.id === wanted) ? wanted : (tenants[0]?.id ?? null)
      set({ tenants, tenantId, error: null })
    } catch (err) {
      set({ error: messageOf(err) })
    }
  },
  select: (tenantId) => {
    try {
      window.localStorage.setItem(STORAGE_KEY, tenantId)
    } catch {
      // Remembering the choice is a convenience; the switch itself does not need it.
    }
    set({ tenantId })
  },
}))
