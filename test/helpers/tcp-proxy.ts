import net from 'node:net'

/**
 * A loopback TCP proxy in front of a server (Postgres) that a test can cut: `refuse` (or `cut`)
 * stops listening (new connections are refused, open ones are dropped), `stall` accepts
 * connections and never answers (open ones are dropped too), `restore` forwards again on the
 * same port.
 */
export interface TcpProxy {
  port: number
  /** `url` with its host and port replaced by the proxy's. */
  through(url: string): string
  /** The same as `refuse`. */
  cut(): Promise<void>
  refuse(): Promise<void>
  stall(): void
  restore(): Promise<void>
  close(): Promise<void>
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let mode: 'open' | 'stall' | 'refused' = 'open'
  const sockets = new Set<net.Socket>()
  const track = (socket: net.Socket): void => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => socket.destroy())
  }
  const dropAll = (): void => {
    for (const socket of sockets) socket.destroy()
  }
  const server = net.createServer((client) => {
    track(client)
    // Stalled: the connection is accepted and nothing ever comes back.
    if (mode !== 'open') return
    const upstream = net.connect(target.port, target.host)
    track(upstream)
    client.pipe(upstream)
    upstream.pipe(client)
    client.on('close', () => upstream.destroy())
    upstream.on('close', () => client.destroy())
  })
  const listen = (port: number): Promise<void> =>
    new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject)
        resolve()
      })
    })
  await listen(0)
  const port = (server.address() as net.AddressInfo).port
  const refuse = async (): Promise<void> => {
    if (mode === 'refused') return
    mode = 'refused'
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    dropAll()
    await closed
  }
  return {
    port,
    through: (url) => {
      const parsed = new URL(url)
      parsed.hostname = '127.0.0.1'
      parsed.port = String(port)
      return parsed.toString()
    },
    cut: refuse,
    refuse,
    stall: () => {
      mode = 'stall'
      dropAll()
    },
    restore: async () => {
      dropAll()
      if (mode === 'refused') await listen(port)
      mode = 'open'
    },
    close: async () => {
      dropAll()
      if (mode !== 'refused') await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
