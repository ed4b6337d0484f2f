#!/usr/bin/env node
// Provisions the Temporal CLI (it embeds the dev server the agent and the tests run); run by
// `npm install` (postinstall) and so by .ci/run. In order:
//   1. TEMPORAL_CLI_PATH, when it names an executable;
//   2. the cached binary in ${GTM_CACHE_DIR:-~/.cache/gtm}/bin;
//   3. a build from its Go module, when Go is on PATH or in /usr/local/go/bin;
//   4. the official release archive for this platform, checked against a pinned SHA-256;
//   5. else one line saying what to install (npm install still succeeds: an agent pointed at a
//      running Temporal with TEMPORAL_ADDRESS needs no CLI).
// GTM_SKIP_TEMPORAL_INSTALL=1 skips all of it.
import { execFileSync, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { gunzipSync } from 'node:zlib'

const VERSION = '1.5.1'
/** SHA-256 of each release archive of v1.5.1, by `<os>_<arch>` as Temporal names them. */
const RELEASE_SHA256 = {
  linux_amd64: 'ddc95e08b0b076efd4ea9733a3f488eb7d2be875f8834e616cd2a37358b4852d',
  linux_arm64: 'bd1b0db9f18b051026de8bf6cc1505f2510f14bbb7a8b9a4a91fff46c77454f5',
  darwin_amd64: 'bbb73e2a31135abe50a1f1cdb35030c42961df618e8ce9c60ae89f201540c5d9',
  darwin_arm64: 'cca01b7ea35ad56e2a328d9ae596bf716bd22313ef63c7a761c88354457c2415',
}
const exe = process.platform === 'win32' ? 'temporal.exe' : 'temporal'
const cacheDir = process.env.GTM_CACHE_DIR?.trim() || path.join(os.homedir(), '.cache', 'gtm')
const binDir = path.join(cacheDir, 'bin')
const target = path.join(binDir, exe)

const say = (line) => console.log(`temporal cli: ${line}`)

async function main() {
  if (process.env.GTM_SKIP_TEMPORAL_INSTALL === '1')
    return say('skipped (GTM_SKIP_TEMPORAL_INSTALL=1)')
  const explicit = process.env.TEMPORAL_CLI_PATH?.trim()
  if (explicit) {
    if (runs(explicit)) return say(`using TEMPORAL_CLI_PATH=${explicit}`)
    throw new Error(`TEMPORAL_CLI_PATH=${explicit} is not a temporal binary that runs`)
  }
  if (runs(target)) return say(`already installed: ${target}`)

  const go = findGo()
  if (go) {
    say(`building v${VERSION} from its Go module with ${go} into ${binDir} (a few minutes, once)`)
    await fs.mkdir(binDir, { recursive: true })
    // CGO off: the CLI's SQLite driver is pure Go, and a static binary runs on any glibc.
    const built = spawnSync(go, ['install', `github.com/temporalio/cli/cmd/temporal@v${VERSION}`], {
      stdio: 'inherit',
      env: { ...process.env, CGO_ENABLED: '0', GOBIN: binDir },
    })
    if (built.status === 0 && runs(target)) return say(`built ${target}`)
    say(`the Go build failed (exit ${String(built.status)}); trying the release archive`)
  }

  const platform = `${{ darwin: 'darwin', linux: 'linux' }[process.platform] ?? process.platform}_${
    { x64: 'amd64', arm64: 'arm64' }[process.arch] ?? process.arch
  }`
  const sha256 = RELEASE_SHA256[platform]
  if (sha256) {
    const url = `https://github.com/temporalio/cli/releases/download/v${VERSION}/temporal_cli_${VERSION}_${platform}.tar.gz`
    try {
      await installFromArchive(url, sha256, target)
      return say(`installed ${target} from ${url}`)
    } catch (err) {
      say(
        `the release archive could not be used: ${err instanceof Error ? err.message : String(err)}`,
      )
    }
  }
  console.error(
    `temporal cli: error: not installed. Install Go (https://go.dev/dl/) and run npm install again, or set TEMPORAL_CLI_PATH to a temporal v${VERSION} binary; the agent and the Temporal tests need it unless TEMPORAL_ADDRESS names a running Temporal.`,
  )
}

function runs(file) {
  if (!existsSync(file)) return false
  return spawnSync(file, ['--version'], { stdio: 'ignore', timeout: 30_000 }).status === 0
}

function findGo() {
  const name = process.platform === 'win32' ? 'go.exe' : 'go'
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/local/go/bin']
  for (const dir of dirs) {
    const candidate = path.join(dir, name)
    if (dir && existsSync(candidate)) {
      try {
        execFileSync(candidate, ['version'], { stdio: 'ignore' })
        return candidate
      } catch {
        // Not a working Go: look further.
      }
    }
  }
  return undefined
}

/**
 * Downloads a release archive, checks its SHA-256, and writes its `temporal` entry to `file`
 * (via a partial file renamed into place, so a failed install leaves nothing behind).
 */
export async function installFromArchive(url, sha256, file) {
  const res = await fetch(url, { signal: AbortSignal.timeout(300_000) })
  if (!res.ok) throw new Error(`HTTP ${res.status}`)
  const archive = Buffer.from(await res.arrayBuffer())
  const actual = createHash('sha256').update(archive).digest('hex')
  if (actual !== sha256) throw new Error(`SHA-256 ${actual} is not the pinned ${sha256}`)
  const name = path.basename(file)
  const binary = tarEntry(gunzipSync(archive), name)
  if (!binary) throw new Error(`the archive has no ${name}`)
  await fs.mkdir(path.dirname(file), { recursive: true })
  const partial = `${file}.partial-${process.pid}`
  await fs.writeFile(partial, binary, { mode: 0o755 })
  await fs.rename(partial, file)
  if (!runs(file)) throw new Error(`${file} does not run`)
}

/** The content of the regular file `name` (at any depth) in an uncompressed ustar archive. */
export function tarEntry(tar, name) {
  for (let offset = 0; offset + 512 <= tar.length;) {
    const header = tar.subarray(offset, offset + 512)
    if (header.every((b) => b === 0)) return undefined
    const field = (start, length) =>
      header
        .subarray(start, start + length)
        .toString('utf8')
        .replace(/\0.*$/s, '')
    const prefix = field(345, 155)
    const entry = prefix ? `${prefix}/${field(0, 100)}` : field(0, 100)
    const size = parseInt(field(124, 12).trim() || '0', 8)
    const type = field(156, 1)
    const body = offset + 512
    if ((type === '0' || type === '') && path.posix.basename(entry) === name) {
      return tar.subarray(body, body + size)
    }
    offset = body + Math.ceil(size / 512) * 512
  }
  return undefined
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err) => {
    console.error(`temporal cli: error: ${err instanceof Error ? err.message : String(err)}`)
    process.exit(1)
  })
}
