/**
 * Starts the built agent as an Electron utility process and links it to main with a MessagePort:
 * the first message carries the port, everything after travels over it.
 */
import { MessageChannelMain, utilityProcess } from 'electron'
import { splitLines } from './lines.js'
import type { AgentProcess, SpawnAgent } from './supervisor.js'

export function utilityAgent(options: {
  entry: string
  env: Record<string, string | undefined>
  onStderr?: (line: string) => void
}): SpawnAgent {
  return () => {
    const child = utilityProcess.fork(options.entry, [], {
      env: options.env,
      serviceName: 'GTM Clarity Connect agent',
      stdio: ['ignore', 'ignore', 'pipe'],
    })
    const { port1, port2 } = new MessageChannelMain()
    child.postMessage({ type: 'link' }, [port2])
    port1.start()
    child.stderr?.setEncoding('utf8')
    child.stderr?.on(
      'data',
      splitLines((line) => options.onStderr?.(line)),
    )
    const exited = new Promise<number | null>((resolve) =>
      child.once('exit', (code) => resolve(code)),
    )
    return {
      get pid() {
        return child.pid ?? null
      },
      post: (message) => port1.postMessage(message),
      onMessage: (listener) => port1.on('message', (event) => listener(event.data)),
      onExit: (listener) => {
        void exited.then(listener)
      },
      kill: () => {
        child.kill()
      },
    } satisfies AgentProcess
  }
}
