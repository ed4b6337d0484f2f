import http from 'node:http'
import net from 'node:net'
import { describe, expect, it } from 'vitest'
import { ConfigError, VendorError } from '../../shared/errors.js'
import type { SignInCapability } from '../../src-agent/connectors/interface.js'
import { openLoopback, signInThroughLoopback } from '../../src-agent/signin/loopback.js'
import { get } from '../helpers/browser.js'
import { freePort, portIsFree } from '../helpers/ports.js'

function withQuery(uri: string, query: Record<string, string>): string {
  const url = new URL(uri)
  for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value)
  return url.toString()
}

/** Settles within `ms`, or says it is still pending. */
function settledWithin<T>(promise: Promise<T>, ms: number): Promise<'pending' | 'settled'> {
  return Promise.race([
    promise.then(
      () => 'settled' as const,
      () => 'settled' as const,
    ),
    new Promise<'pending'>((resolve) => setTimeout(() => resolve('pending'), ms)),
  ])
}

describe('the sign-in loopback listener', () => {
  it('listens on 127.0.0.1 at the fixed port and path, takes the one callback with the exact state, then lets go of the port', async () => {
    const port = await freePort()
    const listener = await openLoopback({ vendor: 'Acme', port, path: '/cb' })
    expect(listener.redirectUri).toBe(`http://127.0.0.1:${port}/cb`)
    const waiting = listener.waitForCallback('s-123')

    const page = await get(withQuery(listener.redirectUri, { code: 'c-1', state: 's-123' }))
    expect(page.status).toBe(200)
    expect(page.body).toContain('You can close this window')
    // The code is never echoed back to the page.
    expect(page.body).not.toContain('c-1')
    const params = await waiting
    expect(params.get('code')).toBe('c-1')

    await listener.close()
    expect(await portIsFree(port)).toBe(true)
    // A second callback finds nobody listening.
    await expect(
      get(withQuery(listener.redirectUri, { code: 'c-2', state: 's-123' })),
    ).rejects.toThrow(/ECONNREFUSED/)
  })

  it('closes the port by itself once the callback is taken', async () => {
    const listener = await openLoopback({ vendor: 'Acme', port: 0 })
    const port = Number(new URL(listener.redirectUri).port)
    const waiting = listener.waitForCallback('s')
    await get(withQuery(listener.redirectUri, { code: 'c', state: 's' }))
    await waiting
    await expect.poll(() => portIsFree(port), { timeout: 2_000 }).toBe(true)
  })

  it('never accepts a wrong or missing state: 400, the sign-in ends with a clear error, and the port is let go', async () => {
    for (const query of [
      { code: 'c', state: 'wrong-state' },
      { code: 'c', state: 'right-stat' },
      { code: 'c', state: 'right-statex' },
      { code: 'c', state: 'RIGHT-STATE' },
      { code: 'c' },
      { error: 'access_denied', state: 'wrong-state' },
    ]) {
      const port = await freePort()
      const listener = await openLoopback({ vendor: 'Acme', port })
      const waiting = listener.waitForCallback('right-state')
      const outcome = waiting.then(
        () => 'accepted',
        (err: unknown) => err,
      )
      const page = await get(withQuery(listener.redirectUri, query))
      expect(page.status, JSON.stringify(query)).toBe(400)
      expect(page.body).toContain('does not belong to the Acme sign-in in progress')
      const error = await outcome
      expect(error).toBeInstanceOf(VendorError)
      expect((error as VendorError).userMessage).toBe(
        `An answer reached http://127.0.0.1:${port}/callback that does not belong to this Acme sign-in (its state does not match), so it was refused and nothing was stored. Start the sign-in again.`,
      )
      await listener.close()
      expect(await portIsFree(port)).toBe(true)
    }
  })

  it('answers other paths and methods without ending the wait', async () => {
    const listener = await openLoopback({ vendor: 'Acme', port: 0 })
    const waiting = listener.waitForCallback('s')
    const origin = new URL(listener.redirectUri).origin
    expect((await get(`${origin}/favicon.ico`)).status).toBe(404)
    const posted = await new Promise<number>((resolve, reject) => {
      const req = http.request(withQuery(listener.redirectUri, { code: 'c', state: 's' }), {
        method: 'POST',
        agent: false,
      })
      req.on('response', (res) => {
        res.resume()
        resolve(res.statusCode ?? 0)
      })
      req.on('error', reject)
      req.end()
    })
    expect(posted).toBe(405)
    expect(await settledWithin(waiting, 100)).toBe('pending')
    await get(withQuery(listener.redirectUri, { code: 'c', state: 's' }))
    await waiting
    await listener.close()
  })

  it("hands over a refusal with the right state, and shows the vendor's reason escaped", async () => {
    const listener = await openLoopback({ vendor: 'Acme', port: 0 })
    const waiting = listener.waitForCallback('s')
    const page = await get(
      withQuery(listener.redirectUri, {
        error: 'access_denied',
        error_description: 'end-user denied <script>alert(1)</script>',
        state: 's',
      }),
    )
    expect(page.status).toBe(200)
    expect(page.body).toContain('Acme did not grant access: end-user denied &lt;script&gt;')
    expect(page.body).not.toContain('<script>')
    expect((await waiting).get('error')).toBe('access_denied')
    await listener.close()
  })

  it('times out with a clear error, and lets go of the port', async () => {
    const port = await freePort()
    const listener = await openLoopback({ vendor: 'Acme', port, timeoutMs: 300 })
    const waiting = listener.waitForCallback('s')
    const error = await waiting.then(
      () => undefined,
      (err: unknown) => err,
    )
    expect(error).toBeInstanceOf(VendorError)
    expect((error as VendorError).userMessage).toBe(
      `No Acme sign-in reached http://127.0.0.1:${port}/callback within 300 ms. Start the sign-in again and finish it in the browser.`,
    )
    await listener.close()
    expect(await portIsFree(port)).toBe(true)
  })

  it('stops waiting when its signal aborts (and when it was aborted before), and lets go of the port', async () => {
    const port = await freePort()
    const controller = new AbortController()
    const listener = await openLoopback({ vendor: 'Acme', port, signal: controller.signal })
    const waiting = listener.waitForCallback('s')
    setTimeout(() => controller.abort(), 50)
    await expect(waiting).rejects.toThrow('The Acme sign-in was cancelled.')
    await listener.close()
    expect(await portIsFree(port)).toBe(true)

    const early = await openLoopback({ vendor: 'Acme', port, signal: AbortSignal.abort() })
    await expect(early.waitForCallback('s')).rejects.toThrow(/cancelled/)
    await early.close()
    expect(await portIsFree(port)).toBe(true)
  })

  it('refuses a port in use with a message naming it, and takes the same port again after a sign-in', async () => {
    const port = await freePort()
    const first = await openLoopback({ vendor: 'Acme', port })
    const refused = await openLoopback({ vendor: 'Acme', port }).then(
      () => undefined,
      (err: unknown) => err,
    )
    expect(refused).toBeInstanceOf(ConfigError)
    expect((refused as ConfigError).userMessage).toMatch(
      new RegExp(`^Port ${port} on 127\\.0\\.0\\.1 is in use, so the Acme sign-in cannot`),
    )
    const waiting = first.waitForCallback('s')
    await get(withQuery(first.redirectUri, { code: 'c', state: 's' }))
    await waiting
    await first.close()

    const second = await openLoopback({ vendor: 'Acme', port })
    expect(second.redirectUri).toBe(first.redirectUri)
    await second.close()
  })

  it('closes even with a browser connection open that never sent a request', async () => {
    const listener = await openLoopback({ vendor: 'Acme', port: 0 })
    const port = Number(new URL(listener.redirectUri).port)
    const socket = net.connect(port, '127.0.0.1')
    await new Promise((resolve) => socket.once('connect', resolve))
    socket.write('GET /callback?sta') // a request cut half-way
    const closed = listener.close()
    expect(await settledWithin(closed, 3_000)).toBe('settled')
    expect(await portIsFree(port)).toBe(true)
    socket.destroy()
  })
})

describe('a whole sign-in through the loopback', () => {
  /** A connector's sign-in whose "vendor" is the test: it records what it was given. */
  function recordingSignIn(calls: string[]): SignInCapability<{ token: string }, { app: string }> {
    return {
      configSchema: undefined as never,
      begin(config, { redirectUri }) {
        calls.push(`begin ${config.app}`)
        return {
          url: `https://vendor.example/authorize?redirect_uri=${encodeURIComponent(redirectUri)}`,
          state: 'st',
          redirectUri,
          secrets: { verifier: 'v' },
        }
      },
      complete(_config, pending, callback) {
        calls.push(`complete ${callback.get('code')} ${pending.secrets.verifier}`)
        if (callback.get('error')) return Promise.reject(new Error('refused'))
        return Promise.resolve({ token: `t-${callback.get('code')}` })
      },
    }
  }

  it('begins, opens the URL, waits, completes, and the port is free when it returns', async () => {
    const calls: string[] = []
    const port = await freePort()
    const config = await signInThroughLoopback(
      recordingSignIn(calls),
      { app: 'a' },
      {
        vendor: 'Acme',
        port,
        open: (url) => {
          const redirectUri = new URL(url).searchParams.get('redirect_uri')!
          calls.push(`open ${redirectUri}`)
          // The browser comes back a moment later.
          setTimeout(() => void get(withQuery(redirectUri, { code: 'c9', state: 'st' })), 20)
        },
      },
    )
    expect(config).toEqual({ token: 't-c9' })
    expect(calls).toEqual(['begin a', `open http://127.0.0.1:${port}/callback`, 'complete c9 v'])
    expect(await portIsFree(port)).toBe(true)
  })

  it('lets go of the port when opening the browser fails or completion fails', async () => {
    const port = await freePort()
    await expect(
      signInThroughLoopback(
        recordingSignIn([]),
        { app: 'a' },
        {
          vendor: 'Acme',
          port,
          open: () => {
            throw new Error('no browser')
          },
        },
      ),
    ).rejects.toThrow('no browser')
    expect(await portIsFree(port)).toBe(true)

    await expect(
      signInThroughLoopback(
        recordingSignIn([]),
        { app: 'a' },
        {
          vendor: 'Acme',
          port,
          open: (url) => {
            const redirectUri = new URL(url).searchParams.get('redirect_uri')!
            setTimeout(() => void get(withQuery(redirectUri, { error: 'x', state: 'st' })), 20)
          },
        },
      ),
    ).rejects.toThrow('refused')
    expect(await portIsFree(port)).toBe(true)
  })
})
