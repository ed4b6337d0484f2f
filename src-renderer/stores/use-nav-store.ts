import { create } from 'zustand'

export type DetailTab = 'overview' | 'timeline' | 'rejected' | 'writeback'

export type Route =
  | { page: 'connectors' }
  | { page: 'connect'; connectorType: string }
  | { page: 'connector'; connectorType: string; tab: DetailTab }
  | { page: 'mappings'; connectorType: string; stream?: string }
  | { page: 'diagnostics' }
  | { page: 'audit' }

type NavState = {
  route: Route
  go: (route: Route) => void
}

/** Where the admin is. Connection pages name the connector; the tenant is the tenant store's. */
export const useNavStore = create<NavState>()((set) => ({
  route: { page: 'connectors' },
  go: (route) => set({ route }),
}))
