/**
 * The agent's entry points, from source and built alike (out/agent/main.js and cli.js re-export
 * them). Importing this module does nothing by itself, so a host process (the desktop app's
 * utility process) can import it and run commands; only `runAgentProcess` exits.
 */
import type { Env } from '../config.js'
import { main } from './index.js'

/**
 * Runs one `gtm-agent` command line (`args` without node and script, e.g. `['worker']`) and
 * resolves to its exit code. Never throws, never exits the process.
 */
export function runAgent(args: readonly string[], env: Env = process.env): Promise<number> {
  // Commander reads a node-style argv; the first two entries are not looked at.
  return main(['node', 'gtm-agent', ...args], env)
}

/**
 * The `gtm-agent` process: runs the command in process.argv, flushes stdout and stderr, and exits
 * even if a connector left a socket or timer open.
 */
export async function runAgentProcess(): Promise<never> {
  const code = await runAgent(process.argv.slice(2))
  await Promise.all([drain(process.stdout), drain(process.stderr)])
  process.exit(code)
}

/** Resolves once everything written so far to a stream has been handed to the OS. */
function drain(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => stream.write('', () => resolve()))
}
