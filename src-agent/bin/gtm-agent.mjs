#!/usr/bin/env node
// The `gtm-agent` command: runs the TypeScript CLI through tsx, so no build step is needed.
import { register } from 'tsx/esm/api'

register()
const { main } = await import('../cli/index.ts')
const code = await main(process.argv)
// Flush, then exit even if a connector left a socket or timer open.
await Promise.all([drain(process.stdout), drain(process.stderr)])
process.exit(code)

/** Resolves once everything written so far to a stream has been handed to the OS. */
function drain(stream) {
  return new Promise((resolve) => stream.write('', () => resolve()))
}
