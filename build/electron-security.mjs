#!/usr/bin/env node
// Runs Electronegativity (Doyensec's checker for Electron misconfigurations) over the project,
// sources and build (node_modules is skipped by the tool). Fails (exit 1) on any finding of high
// or medium severity, and when a file of main, preload or renderer cannot be checked; lists every
// finding. A finding reviewed and accepted is marked where it is, with `// eng-disable <CHECK>`
// and the reason on the line above. `npm test` runs it after the build.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)
const run = require('@doyensec/electronegativity')
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const INPUTS = ['.']
// Files that must be checkable. The tool's parser predates #private class fields, so some built
// bundles cannot be read: main's bundle is checked through its sources instead, and the agent
// has no Electron code (lint keeps electron out of it).
const MUST_CHECK = /^(src-main|src-renderer|out\/preload|out\/renderer)\//
const FAILING = new Set(['HIGH', 'MEDIUM'])

const electronVersion = JSON.parse(
  readFileSync(path.join(root, 'node_modules', 'electron', 'package.json'), 'utf8'),
).version

// The library logs its progress with winston and console; keep the report readable.
const log = console.log
console.log = () => undefined
const findings = []
const problems = []
try {
  for (const input of INPUTS) {
    const result = await run({
      input: path.join(root, input),
      electronVersionOverride: electronVersion,
      isRelative: true,
    })
    for (const issue of result.issues)
      findings.push({ ...issue, file: path.join(input, issue.file) })
    for (const error of result.errors) {
      if (!error.tolerable) problems.push({ ...error, file: path.relative(root, error.file) })
    }
  }
} finally {
  console.log = log
}

const failing = findings.filter((f) => FAILING.has(f.severity?.name ?? f.severity))
for (const f of findings) {
  const severity = f.severity?.name ?? f.severity
  const where = f.location ? `${f.file}:${f.location.line}:${f.location.column}` : f.file
  console.log(`${severity.padEnd(13)} ${f.id}  ${where}  ${f.description ?? ''}`)
}
const blocking = problems.filter((p) => MUST_CHECK.test(p.file))
for (const p of problems) {
  console.log(
    `could not check ${p.file}: ${p.message}${MUST_CHECK.test(p.file) ? '' : ' (no Electron code)'}`,
  )
}
console.log(
  `Electronegativity ${electronVersion ? `(Electron ${electronVersion})` : ''}: ${findings.length} finding(s), ${failing.length} of high or medium severity, over ${INPUTS.join(', ')}.`,
)
if (failing.length > 0 || blocking.length > 0) process.exitCode = 1
