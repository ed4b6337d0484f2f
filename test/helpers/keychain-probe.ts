/**
 * Run in a child process by the keychain tests (under dbus-run-session, or with no session bus):
 * probes the OS keychain, provides the encryption key twice, and prints what happened as JSON.
 */
import { provideEncryptionKey } from '../../src-main/secrets/encryption-key.js'
import { osKeychain } from '../../src-main/secrets/keychain.js'

const keychain = osKeychain(process.argv[2] ?? 'GTM Clarity Connect test')
const status = await keychain.probe()
const attempt = async () => {
  try {
    const { key, source } = await provideEncryptionKey(keychain)
    return { key, source }
  } catch (err) {
    return { error: (err as Error).message, name: (err as Error).constructor.name }
  }
}
const first = await attempt()
const second = await attempt()
process.stdout.write(`${JSON.stringify({ status, first, second })}\n`)
