/**
 * Starts the agent with Node's child_process.fork: the same entry Electron's utilityProcess runs,
 * over Node's IPC channel instead of a MessagePort. Tests use it; so could a plain Node host.
 */
import { fork } from 'node:child_process'
import { splitLines } from './lines.js'
import type { AgentProcess, SpawnAgent } from './supervisor.js'

export interface ForkOptions {
  /** The agent entry: out/agent/service.js, or src-agent/rpc/process.ts with tsx. */
  entry: string
  env: Record<string, string | undefined>
  execArgv?: string[]
  /** Each line the agent writes to stderr (its JSON log). */
  onStderr?: (line: string) => void
}

export function forkAgent(options: ForkOptions): SpawnAgent {
  return () => {
    const child = fork(options.entry, [], {
      env: options.env,
      execArgv: options.execArgv ?? [],
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    })
    child.stderr?.setEncoding('utf8').on(
      'data',
      splitLines((line) => options.onStderr?.(line)),
    )
    const exited = new Promise<number | null>((resolve) =>
      child.once('exit', (code) => resolve(code)),
    )
    return {
      pid: child.pid ?? null,
      post: (message) => {
        if (child.connected) child.send(message)
      },
      onMessage: (listener) => child.on('message', listener),
      onExit: (listener) => {
        void exited.then(listener)
      },
      kill: () => {
        child.kill('SIGKILL')
      },
    } satisfies AgentProcess
  }
}
