/**
 * The OS keychain through @napi-rs/keyring: macOS Keychain, Windows Credential Manager, or the
 * Secret Service (GNOME Keyring, KWallet) on Linux. On Linux the library would fall back to the
 * kernel keyring, which forgets everything at reboot, so entries are pinned to the Secret Service:
 * without one the keychain is reported unavailable, and nothing is kept anywhere else.
 */
import { AsyncEntry } from '@napi-rs/keyring'
import type { EntryOptions } from '@napi-rs/keyring'

export interface KeychainStatus {
  backend: string
  available: boolean
  persistent: boolean
  problem: string | null
}

export interface Keychain {
  readonly backend: string
  /** The secret, or null when none is kept. Throws KeychainUnavailable when the store cannot be reached. */
  get(name: string): Promise<string | null>
  set(name: string, value: string): Promise<void>
  delete(name: string): Promise<boolean>
  /** Whether the store works now: writes, reads back and removes a probe entry. */
  probe(): Promise<KeychainStatus>
}

export class KeychainUnavailable extends Error {}

const BACKENDS: Partial<Record<NodeJS.Platform, string>> = {
  darwin: 'macOS Keychain',
  win32: 'Windows Credential Manager',
  linux: 'Secret Service (GNOME Keyring, KWallet)',
}

/** The keychain entries of one app (`service`), e.g. "GTM Clarity Connect". */
export function osKeychain(
  service: string,
  platform: NodeJS.Platform = process.platform,
): Keychain {
  const backend = BACKENDS[platform] ?? `${platform} credential store`
  const options: EntryOptions | undefined =
    platform === 'linux' ? { linux: { store: 'secret-service' } } : undefined
  const entry = (name: string): AsyncEntry => {
    try {
      return new AsyncEntry(service, name, options)
    } catch (err) {
      throw unavailable(backend, err)
    }
  }
  const attempt = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn()
    } catch (err) {
      throw err instanceof KeychainUnavailable ? err : unavailable(backend, err)
    }
  }
  const keychain: Keychain = {
    backend,
    get: (name) => attempt(() => entry(name).getPassword()),
    set: (name, value) => attempt(() => entry(name).setPassword(value)),
    delete: (name) => attempt(() => entry(name).deletePassword()),
    probe: async () => {
      const name = 'availability-probe'
      try {
        await keychain.set(name, 'probe')
        const back = await keychain.get(name)
        await keychain.delete(name)
        if (back !== 'probe')
          throw new KeychainUnavailable(`${backend} did not keep what was written.`)
        return { backend, available: true, persistent: true, problem: null }
      } catch (err) {
        return { backend, available: false, persistent: false, problem: (err as Error).message }
      }
    },
  }
  return keychain
}

function unavailable(backend: string, cause: unknown): KeychainUnavailable {
  const detail = cause instanceof Error ? cause.message : String(cause)
  const linuxHint = /dbus|secret service|DBUS_SESSION_BUS_ADDRESS|no result found/i.test(detail)
    ? ' Start and unlock a Secret Service (GNOME Keyring or KWallet) in your desktop session, or set CONNECTOR_ENCRYPTION_KEY in the environment.'
    : ''
  return new KeychainUnavailable(
    `The OS keychain (${backend}) cannot be used: ${firstLine(detail)}.${linuxHint} Nothing is stored in plain text instead.`,
    { cause },
  )
}

function firstLine(text: string): string {
  return (text.split('\n')[0] ?? '').replace(/[.\s]+$/, '')
}
