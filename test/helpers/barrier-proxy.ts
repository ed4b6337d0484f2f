import http from 'node:http'
import type { AddressInfo } from 'node:net'

export interface BarrierProxy {
  /** Give clients this base URL instead of the target's. */
  url: string
  /** Requests the barrier held, and whether it has let them go. */
  readonly held: number
  readonly released: boolean
  /** Lets the held requests go now, and every later one through. */
  release(): void
  close(): Promise<void>
}

export interface BarrierOptions {
  /** How many matching requests to hold before letting them all through together. */
  count: number
  /** Which requests the barrier holds; any other passes at once. */
  hold: (req: http.IncomingMessage) => boolean
  /** Lets the held requests go anyway after this long, so a missing client fails an assertion instead of hanging. */
  maxWaitMs?: number
}

/**
 * A loopback proxy in front of a fake vendor that holds the first `count` requests matching
 * `hold`, then forwards them at once: a barrier that makes separate processes, however long
 * each took to start, reach the vendor at the same moment. After that it forwards everything.
 */
export async function startBarrierProxy(
  target: string,
  options: BarrierOptions,
): Promise<BarrierProxy> {
  const waiting: Array<() => void> = []
  let held = 0
  let released = false
  const release = (): void => {
    released = true
    clearTimeout(timer)
    for (const forward of waiting.splice(0)) forward()
  }
  const timer = setTimeout(release, options.maxWaitMs ?? 30_000).unref()

  const server = http.createServer((req, res) => {
    const forward = (): void => {
      const upstream = http.request(
        new URL(req.url ?? '/', target),
        { method: req.method, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers)
          answer.pipe(res)
        },
      )
      upstream.on('error', () => res.destroy())
      req.pipe(upstream)
    }
    if (released || !options.hold(req)) return forward()
    held += 1
    waiting.push(forward)
    if (held >= options.count) release()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    get held() {
      return held
    },
    get released() {
      return released
    },
    release,
    close: () =>
      new Promise<void>((resolve, reject) => {
        release()
        server.closeAllConnections()
        server.close((err) => (err ? reject(err) : resolve()))
      }),
  }
}
