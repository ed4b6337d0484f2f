// Which agent `gtm-agent` runs: the build in out/agent or the TypeScript sources (through tsx).
// Plain JavaScript, since it runs before anything can load TypeScript.
import { readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = new URL('../../', import.meta.url)

/** The module both entries export `runAgentProcess` from. */
export const SOURCE_ENTRY = new URL('src-agent/cli/run.ts', root)
export const BUILT_ENTRY = new URL('out/agent/src-agent/cli/run.js', root)
/** Written last by the build: when it started, so an edit made during the build counts as newer. */
export const BUILD_STAMP = new URL('out/agent/build.json', root)

/** What the build is made from; the bin folder is not part of it. */
const SOURCES = ['src-agent', 'db', 'shared']
const NOT_BUILT = new Set([fileURLToPath(new URL('src-agent/bin', root))])

/**
 * `{ from: 'source' | 'build', entry, why }`. The sources run when GTM_AGENT_FROM_SOURCE=1, when
 * GTM_CONNECTOR_MODULES lists a TypeScript module (it imports the agent's sources, which the
 * build cannot share), when there is no build, or when a source file is newer than the build.
 * An installed package has no sources, so it always runs its build.
 */
export function chooseAgent(env = process.env) {
  const hasSources = exists(SOURCE_ENTRY)
  if (!hasSources) return { from: 'build', entry: BUILT_ENTRY, why: 'no sources' }
  const source = (why) => ({ from: 'source', entry: SOURCE_ENTRY, why })
  if (env.GTM_AGENT_FROM_SOURCE === '1') return source('GTM_AGENT_FROM_SOURCE=1')
  if (listsTypeScript(env.GTM_CONNECTOR_MODULES)) return source('a TypeScript connector module')
  const builtAt = buildTime()
  if (builtAt === undefined || !exists(BUILT_ENTRY)) return source('no build')
  if (newestSource() > builtAt) return source('the build is older than the sources')
  return { from: 'build', entry: BUILT_ENTRY, why: 'the build is up to date' }
}

/** When the build in out/agent started, or undefined when there is no complete build. */
export function buildTime() {
  try {
    const stamp = JSON.parse(readFileSync(BUILD_STAMP, 'utf8'))
    return typeof stamp.startedAt === 'number' ? stamp.startedAt : undefined
  } catch {
    return undefined
  }
}

/** The latest modification time (ms) of any file the build is made from, package.json included. */
export function newestSource() {
  let newest = statSync(new URL('package.json', root)).mtimeMs
  const walk = (dir) => {
    if (NOT_BUILT.has(dir)) return
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name)
      if (entry.isDirectory()) walk(file)
      else newest = Math.max(newest, statSync(file).mtimeMs)
    }
  }
  for (const dir of SOURCES) walk(fileURLToPath(new URL(dir, root)))
  return newest
}

function listsTypeScript(list) {
  return (list ?? '').split(',').some((entry) => /\.[cm]?ts$/i.test(entry.trim()))
}

function exists(url) {
  try {
    statSync(url)
    return true
  } catch {
    return false
  }
}
