/**
 * Starts an agent HTTP server (the operations endpoint, the webhook receiver) on a host and port,
 * and stops it again.
 */
import type http from 'node:http'
import type { AddressInfo } from 'node:net'

export interface Listening {
  /** http://host:port, an IPv6 host in brackets. */
  url: string
  /** The port bound (the one the system chose for port 0). */
  port: number
  /**
   * Stops accepting connections and ends the idle ones; with `dropBusy`, also those in the
   * middle of a request, else they finish first.
   */
  close(): Promise<void>
}

export async function listen(
  server: http.Server,
  port: number,
  host: string,
  options: { dropBusy?: boolean } = {},
): Promise<Listening> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const bound = (server.address() as AddressInfo).port
  const shownHost = host.includes(':') ? `[${host}]` : host
  return {
    url: `http://${shownHost}:${bound}`,
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        if (options.dropBusy) server.closeAllConnections()
        else server.closeIdleConnections()
      }),
  }
}
