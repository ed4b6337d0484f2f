import { spawn } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { repoRoot } from '../../helpers/cli.js'

interface ProbeResult {
  status: { backend: string; available: boolean; persistent: boolean; problem: string | null }
  first: { key?: string; source?: string; error?: string; name?: string }
  second: { key?: string; source?: string; error?: string; name?: string }
}

const probeScript = path.join(repoRoot, 'test/helpers/keychain-probe.ts')

/** Runs the probe with HOME in `home`, under a fresh D-Bus session with an unlocked GNOME Keyring or none. */
function runProbe(
  home: string,
  options: { secretService: boolean; env?: Record<string, string> },
): Promise<ProbeResult> {
  const node = `${JSON.stringify(process.execPath)} --import tsx ${JSON.stringify(probeScript)} "GTM Clarity Connect test"`
  const command = options.secretService
    ? [
        'dbus-run-session',
        '--',
        'sh',
        '-c',
        // The daemon reads the login keyring's password on stdin and unlocks (creating) it.
        `printf 'test-password' | gnome-keyring-daemon --unlock --components=secrets >/dev/null && ${node}`,
      ]
    : ['sh', '-c', node]
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !/^(DBUS_|CONNECTOR_ENCRYPTION_KEY|XDG_RUNTIME_DIR)/.test(name)) {
      env[name] = value
    }
  }
  Object.assign(env, { HOME: home, XDG_DATA_HOME: path.join(home, '.local/share') }, options.env)
  return new Promise((resolve, reject) => {
    const child = spawn(command[0]!, command.slice(1), { cwd: repoRoot, env })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c))
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c))
    child.on('error', reject)
    child.on('close', (code) => {
      const line = stdout.split('\n').find((l) => l.startsWith('{'))
      if (!line) return reject(new Error(`probe printed nothing (exit ${code}): ${stderr}`))
      resolve(JSON.parse(line) as ProbeResult)
    })
  })
}

/** Whether any file under `dir` holds `text` in clear. */
async function foundInFiles(dir: string, text: string): Promise<string[]> {
  const found: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue
    const file = path.join(entry.parentPath, entry.name)
    if ((await readFile(file)).includes(text)) found.push(file)
  }
  return found
}

describe('the OS keychain (a real Secret Service: GNOME Keyring over D-Bus)', () => {
  let home: string | undefined
  afterEach(async () => {
    if (home) await rm(home, { recursive: true, force: true })
    home = undefined
  })

  it('generates the encryption key once, keeps it in the keychain, and never writes it in clear', async () => {
    home = await mkdtemp(path.join(os.tmpdir(), 'gtm-keychain-'))
    const result = await runProbe(home, { secretService: true })
    expect(result.status).toEqual({
      backend: 'Secret Service (GNOME Keyring, KWallet)',
      available: true,
      persistent: true,
      problem: null,
    })
    expect(result.first).toMatchObject({
      source: 'generated',
      key: expect.stringMatching(/^[0-9a-f]{64}$/) as unknown,
    })
    expect(result.second).toEqual({ source: 'keychain', key: result.first.key })
    // The keyring's file exists, encrypted: the key appears nowhere under HOME in clear.
    expect(await foundInFiles(home, result.first.key!)).toEqual([])
    expect(
      (await readdir(home, { recursive: true })).some((f) => String(f).includes('keyrings')),
    ).toBe(true)
  })

  it('without a Secret Service: says so and how to fix it, keeps nothing, and takes the key from the environment instead', async () => {
    home = await mkdtemp(path.join(os.tmpdir(), 'gtm-keychain-'))
    const result = await runProbe(home, { secretService: false })
    expect(result.status.available).toBe(false)
    expect(result.status.persistent).toBe(false)
    expect(result.status.problem).toMatch(
      /^The OS keychain \(Secret Service \(GNOME Keyring, KWallet\)\) cannot be used: .+ Start and unlock a Secret Service \(GNOME Keyring or KWallet\) in your desktop session, or set CONNECTOR_ENCRYPTION_KEY in the environment\. Nothing is stored in plain text instead\.$/,
    )
    expect(result.first).toEqual({ error: result.status.problem, name: 'KeychainUnavailable' })
    expect(await foundInFiles(home, 'GTM Clarity Connect')).toEqual([])

    const key = 'd'.repeat(64)
    const fromEnv = await runProbe(home, {
      secretService: false,
      env: { CONNECTOR_ENCRYPTION_KEY: key },
    })
    expect(fromEnv.first).toEqual({ key, source: 'environment' })
  })
})
