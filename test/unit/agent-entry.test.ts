import { copyFile, mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type * as agentEntry from '../../src-agent/bin/agent-entry.mjs'
import { repoRoot } from '../helpers/cli.js'

type AgentEntry = typeof agentEntry

/** A checkout in a temporary folder: sources and a build, with mtimes set by each test. */
describe('which agent gtm-agent runs', () => {
  let root: string
  let entry: AgentEntry
  const BUILT_AT = Date.parse('2030-01-01T00:00:00Z')

  const file = async (rel: string, mtime: number, text = ''): Promise<void> => {
    const full = path.join(root, rel)
    await mkdir(path.dirname(full), { recursive: true })
    await writeFile(full, text)
    await utimes(full, mtime / 1000, mtime / 1000)
  }

  beforeEach(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'gtm-entry-'))
    await mkdir(path.join(root, 'src-agent/bin'), { recursive: true })
    const copy = path.join(root, 'src-agent/bin/agent-entry.mjs')
    await copyFile(path.join(repoRoot, 'src-agent/bin/agent-entry.mjs'), copy)
    const older = BUILT_AT - 60_000
    await utimes(copy, older / 1000, older / 1000)
    await file('package.json', older, '{}')
    await file('src-agent/cli/run.ts', older)
    await file('db/migrations/0000_init.sql', older)
    await file('shared/errors.ts', older)
    await file('out/agent/src-agent/cli/run.js', BUILT_AT)
    await file('out/agent/build.json', BUILT_AT, JSON.stringify({ startedAt: BUILT_AT }))
    entry = (await import(copy)) as AgentEntry
  })
  afterEach(async () => {
    await rm(root, { recursive: true, force: true })
  })

  it('runs the build when no source is newer than it', () => {
    expect(entry.chooseAgent({})).toMatchObject({ from: 'build' })
    expect(entry.chooseAgent({}).entry.pathname).toBe(
      path.join(root, 'out/agent/src-agent/cli/run.js'),
    )
  })

  it('runs the sources once any of them is newer than the build, a migration included', async () => {
    await file('db/migrations/0001_next.sql', BUILT_AT + 1000)
    expect(entry.chooseAgent({})).toMatchObject({
      from: 'source',
      why: 'the build is older than the sources',
    })
    expect(entry.chooseAgent({}).entry.pathname).toBe(path.join(root, 'src-agent/cli/run.ts'))
  })

  it('does not count the bin folder, which the build does not contain', async () => {
    await file('src-agent/bin/gtm-agent.mjs', BUILT_AT + 1000)
    expect(entry.chooseAgent({})).toMatchObject({ from: 'build' })
  })

  it('runs the sources when asked to, or for a TypeScript connector module', () => {
    expect(entry.chooseAgent({ GTM_AGENT_FROM_SOURCE: '1' })).toMatchObject({ from: 'source' })
    expect(entry.chooseAgent({ GTM_CONNECTOR_MODULES: 'a.mjs, b.ts' })).toMatchObject({
      from: 'source',
      why: 'a TypeScript connector module',
    })
    expect(entry.chooseAgent({ GTM_CONNECTOR_MODULES: 'a.mjs,b.js' })).toMatchObject({
      from: 'build',
    })
  })

  it('runs the sources when the build is missing or incomplete', async () => {
    await rm(path.join(root, 'out/agent/build.json'))
    expect(entry.chooseAgent({})).toMatchObject({ from: 'source', why: 'no build' })
  })

  it('runs the build, whatever the environment, when there are no sources (an install)', async () => {
    await rm(path.join(root, 'src-agent/cli/run.ts'))
    expect(entry.chooseAgent({ GTM_AGENT_FROM_SOURCE: '1' })).toMatchObject({ from: 'build' })
  })
})
