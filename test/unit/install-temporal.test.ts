import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import fs from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// @ts-expect-error: a plain JavaScript install step, typed by its use here.
import { installFromArchive } from '../../build/install-temporal.mjs'

const install = installFromArchive as (url: string, sha256: string, file: string) => Promise<void>

/** The release-archive path of the Temporal CLI install step, against a loopback server. */
describe('Temporal CLI install from a release archive', () => {
  let dir: string
  let archive: Buffer
  let server: http.Server
  let url: string

  beforeAll(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'gtm-install-temporal-'))
    // Laid out as Temporal's archives are: the binary beside a licence file.
    const content = path.join(dir, 'content')
    await fs.mkdir(content)
    await fs.writeFile(path.join(content, 'LICENSE'), 'licence text\n')
    await fs.writeFile(
      path.join(content, 'temporal'),
      '#!/bin/sh\necho "temporal version test"\n',
      {
        mode: 0o755,
      },
    )
    execFileSync('tar', [
      '-czf',
      path.join(dir, 'cli.tar.gz'),
      '-C',
      content,
      'LICENSE',
      'temporal',
    ])
    archive = await fs.readFile(path.join(dir, 'cli.tar.gz'))
    server = http.createServer((_req, res) => res.end(archive))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/cli.tar.gz`
  })
  afterAll(async () => {
    await new Promise((resolve) => server?.close(resolve))
    await fs.rm(dir, { recursive: true, force: true })
  })

  it('installs the binary when the archive matches the pinned SHA-256', async () => {
    const sha = createHash('sha256').update(archive).digest('hex')
    const file = path.join(dir, 'ok', 'temporal')
    await install(url, sha, file)
    expect(execFileSync(file, ['--version'], { encoding: 'utf8' })).toBe('temporal version test\n')
  })

  it('refuses an archive whose SHA-256 differs, and leaves nothing behind', async () => {
    const file = path.join(dir, 'refused', 'temporal')
    await expect(install(url, '0'.repeat(64), file)).rejects.toThrow(
      /SHA-256 [0-9a-f]{64} is not the pinned 0{64}/,
    )
    expect(existsSync(path.dirname(file))).toBe(false)
  })
})
