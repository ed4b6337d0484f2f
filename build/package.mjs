#!/usr/bin/env node
// `npm run package`: the desktop installer for this machine's platform (AppImage and .deb on
// Linux, .dmg on macOS, NSIS .exe on Windows) in dist/. Builds main, preload, renderer and the
// agent (`npm run build`), stages the Temporal CLI into dist/staging/bin, then runs
// electron-builder with build/electron-builder.yml. Extra arguments go to electron-builder
// (e.g. `npm run package -- --arm64`). Needs the Electron binary, which npm installs unless
// ELECTRON_SKIP_BINARY_DOWNLOAD is set, and network access for electron-builder's own tools.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const exe = process.platform === 'win32' ? 'temporal.exe' : 'temporal'

function fail(message) {
  console.error(`error: ${message}`)
  process.exit(1)
}

function run(command, args) {
  const result = spawnSync(command, args, {
    cwd: root,
    stdio: 'inherit',
    shell: process.platform === 'win32',
  })
  if (result.status !== 0) fail(`${command} ${args.join(' ')} failed (exit ${result.status}).`)
}

/** The Temporal CLI npm install provisioned (build/install-temporal.mjs), or TEMPORAL_CLI_PATH. */
function temporalCli() {
  const explicit = process.env.TEMPORAL_CLI_PATH?.trim()
  const cacheDir = process.env.GTM_CACHE_DIR?.trim() || path.join(os.homedir(), '.cache', 'gtm')
  const candidate = explicit || path.join(cacheDir, 'bin', exe)
  if (!existsSync(candidate)) {
    fail(
      `No Temporal CLI at ${candidate}. Run \`npm install\` (its postinstall provisions it) or set TEMPORAL_CLI_PATH.`,
    )
  }
  return candidate
}

let electronBinary
try {
  const electron = await import('electron')
  electronBinary = electron.default
} catch {
  electronBinary = undefined
}
if (!electronBinary || !existsSync(electronBinary)) {
  fail(
    'The Electron binary is not installed (npm was run with ELECTRON_SKIP_BINARY_DOWNLOAD). Run `npm install` without it on a machine that can download Electron, then package.',
  )
}

run('npm', ['run', 'build'])
const staging = path.join(root, 'dist', 'staging', 'bin')
await fs.rm(path.join(root, 'dist', 'staging'), { recursive: true, force: true })
await fs.mkdir(staging, { recursive: true })
await fs.copyFile(temporalCli(), path.join(staging, exe))
await fs.chmod(path.join(staging, exe), 0o755)
run('npx', ['electron-builder', '--config', 'build/electron-builder.yml', ...process.argv.slice(2)])
console.log('The installer is in dist/.')
