import Store from 'electron-store'
import type { SettingsBackend } from './store.js'

/** The settings file in the app's user-data folder (electron-store), as a SettingsBackend. */
export function electronStoreSettings(): SettingsBackend {
  const store = new Store<Record<string, unknown>>({ name: 'settings', clearInvalidConfig: false })
  return {
    read: () => store.store,
    write: (settings) => {
      store.store = settings
    },
  }
}
