/**
 * The agent's end of its link to the desktop app. Under Electron the agent is a utility process:
 * main posts it a MessagePort as the first message on `process.parentPort`, and everything after
 * travels over that port. Under plain Node (tests fork the same entry) the link is the IPC channel
 * of `child_process.fork`. Both carry structured-clone messages; the rest of the agent sees only
 * this interface.
 */

export interface AgentLink {
  post(message: unknown): void
  onMessage(listener: (message: unknown) => void): void
  /** Called once when main's end goes away (main quit or crashed). */
  onClose(listener: () => void): void
}

/** What Electron gives a utility process; typed here because the agent never imports electron. */
interface ParentPort {
  on(event: 'message', listener: (event: { data: unknown; ports: MessagePortLike[] }) => void): void
  once(
    event: 'message',
    listener: (event: { data: unknown; ports: MessagePortLike[] }) => void,
  ): void
}

interface MessagePortLike {
  on(event: 'message', listener: (event: { data: unknown }) => void): void
  on(event: 'close', listener: () => void): void
  postMessage(message: unknown): void
  start(): void
}

/**
 * The link to main: the MessagePort main hands over (utility process), or the Node IPC channel
 * (forked). Undefined when the process was started neither way (from a shell).
 */
export async function connectToMain(): Promise<AgentLink | undefined> {
  const parentPort = (process as unknown as { parentPort?: ParentPort }).parentPort
  if (parentPort) return await portLink(parentPort)
  if (typeof process.send === 'function') return ipcLink()
  return undefined
}

function portLink(parentPort: ParentPort): Promise<AgentLink> {
  return new Promise((resolve) => {
    parentPort.once('message', ({ ports }) => {
      const port = ports[0]
      if (!port) throw new Error('main sent no MessagePort with its first message')
      port.start()
      resolve({
        post: (message) => port.postMessage(message),
        onMessage: (listener) => port.on('message', ({ data }) => listener(data)),
        onClose: (listener) => port.on('close', listener),
      })
    })
  })
}

function ipcLink(): AgentLink {
  return {
    post: (message) => {
      // The channel is gone once main has exited; nothing is left to tell.
      if (process.connected) process.send?.(message)
    },
    onMessage: (listener) => process.on('message', listener),
    onClose: (listener) => process.once('disconnect', listener),
  }
}
