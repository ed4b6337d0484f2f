/** Loopback ports for the local servers the agent starts (embedded Postgres, Temporal). */
import net from 'node:net'

/** A free loopback port (the server binds it a moment later; a clash fails the start loudly). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address()
      srv.close(() => {
        if (address && typeof address === 'object') resolve(address.port)
        else reject(new Error('no free port'))
      })
    })
  })
}
