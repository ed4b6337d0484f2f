/**
 * CONNECTOR_ENCRYPTION_KEY on a desktop: generated on first run and kept in the OS keychain, then
 * handed to the agent process in its environment at start; never written to disk in clear. An
 * admin may instead set it in the environment (a shared database configured from several
 * machines needs the same key on each).
 */
import { randomBytes } from 'node:crypto'
import type { Keychain } from './keychain.js'

export const ENCRYPTION_KEY_NAME = 'connector-encryption-key'
const KEY_PATTERN = /^[0-9a-f]{64}$/i

export type EncryptionKeySource = 'environment' | 'keychain' | 'generated'

export class EncryptionKeyError extends Error {}

/** The key to hand the agent, and where it came from. */
export async function provideEncryptionKey(
  keychain: Keychain,
  env: Record<string, string | undefined> = process.env,
): Promise<{ key: string; source: EncryptionKeySource }> {
  const fromEnv = env['CONNECTOR_ENCRYPTION_KEY']?.trim()
  if (fromEnv) {
    if (!KEY_PATTERN.test(fromEnv)) {
      throw new EncryptionKeyError(
        'CONNECTOR_ENCRYPTION_KEY in the environment is not 64 hexadecimal characters. Fix it, or unset it to use the key kept in the OS keychain.',
      )
    }
    return { key: fromEnv, source: 'environment' }
  }
  const kept = await keychain.get(ENCRYPTION_KEY_NAME)
  if (kept !== null) {
    if (!KEY_PATTERN.test(kept)) {
      throw new EncryptionKeyError(
        `The connector encryption key in the ${keychain.backend} is damaged (not 64 hexadecimal characters). Restore it from your backup; a new key could not decrypt the stored connections.`,
      )
    }
    return { key: kept, source: 'keychain' }
  }
  const key = randomBytes(32).toString('hex')
  await keychain.set(ENCRYPTION_KEY_NAME, key)
  // Read back: a store that accepts a write but keeps nothing would lose every connection.
  if ((await keychain.get(ENCRYPTION_KEY_NAME)) !== key) {
    throw new EncryptionKeyError(
      `The ${keychain.backend} did not keep the new encryption key, so connections could not be decrypted after a restart.`,
    )
  }
  return { key, source: 'generated' }
}
