import net from 'node:net'
import { eq } from 'drizzle-orm'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { auditLog, connectors } from '../../../db/schema/index.js'
import { withTenant } from '../../../db/tenant.js'
import type { IpcEventName } from '../../../shared/ipc.js'
import { startMicrosoftFake, type MicrosoftFake } from '../../fakes/microsoft.js'
import { startSalesforceFake, type SalesforceFake } from '../../fakes/salesforce.js'
import { browse, get, type Page } from '../../helpers/browser.js'
import { ownerDb, uniqueTenantId } from '../../helpers/db.js'
import { appHandlers, startAgentProcess, type AgentUnderTest } from '../../helpers/desktop.js'
import { testCertificate } from '../../helpers/tls.js'
import { freePort, portIsFree } from '../../helpers/ports.js'

/**
 * The desktop sign-in, as the renderer drives it: `signin:begin` through main's handlers and the
 * shared dispatch, the real agent process behind them, and a test client in the browser's place.
 */
/**
 * The app as a sign-in test drives it: a vendor fake on a registered callback port, the agent
 * process, main's handlers over it, and a stand-in for the system browser that each test sets.
 */
function appForSignIn(options: {
  tenantPrefix: string
  signInTimeoutMs: number
  env?: Record<string, string>
  startFake: (port: number) => Promise<{ close(): Promise<void> }>
}) {
  const app = {
    port: 0,
    agent: undefined as unknown as AgentUnderTest,
    call: undefined as unknown as ReturnType<typeof appHandlers>['call'],
    owner: ownerDb(),
    events: [] as Array<{ event: IpcEventName; data: unknown }>,
    opened: [] as string[],
    /** What the "system browser" does with the page main opens. */
    browser: (async () => undefined) as (url: string) => Promise<unknown>,
    newTenant: async (): Promise<string> => {
      const tenantId = uniqueTenantId(options.tenantPrefix)
      expect((await app.call('tenants:create', { id: tenantId, name: 'Sign-in' })).ok).toBe(true)
      return tenantId
    },
    phases: () =>
      app.events
        .filter((e) => e.event === 'signin:state')
        .map((e) => (e.data as { phase: string }).phase),
  }
  let fake: { close(): Promise<void> } | undefined
  beforeAll(async () => {
    app.port = await freePort()
    fake = await options.startFake(app.port)
    app.agent = await startAgentProcess({
      ...(options.env ? { env: options.env } : {}),
      supervisor: { onEvent: (event, data) => app.events.push({ event, data }) },
    })
    app.call = appHandlers(app.agent, {
      redirectPort: app.port,
      openSignInPage: (url) => {
        app.opened.push(url)
        // Like a browser tab: it loads on its own; the app does not wait for it.
        void app.browser(url)
      },
      signInTimeoutMs: options.signInTimeoutMs,
    }).call
  })
  afterAll(async () => {
    await app.agent?.close()
    await fake?.close()
    await app.owner.close()
  })
  afterEach(() => {
    app.opened = []
    app.events.length = 0
    app.browser = async () => undefined
  })
  return app
}

describe('sign-in through the system browser, from the app', () => {
  let fake: SalesforceFake
  const app = appForSignIn({
    tenantPrefix: 'signin',
    signInTimeoutMs: 1_500,
    startFake: async (port) =>
      (fake = await startSalesforceFake({ callbackUrls: [`http://127.0.0.1:${port}/callback`] })),
  })

  const stored = (tenantId: string) =>
    withTenant(app.owner.db, tenantId, async (tx) => ({
      connections: await tx.select().from(connectors).where(eq(connectors.tenantId, tenantId)),
      audit: await tx.select().from(auditLog).where(eq(auditLog.tenantId, tenantId)),
    }))
  const begin = (tenantId: string) =>
    app.call('signin:begin', {
      tenantId,
      connectorType: 'salesforce',
      config: { loginUrl: fake.url, clientId: fake.clientId, bulkPollIntervalMs: 5 },
    })
  it('opens the vendor page, stores encrypted credentials, audits once, and lets go of the port', async () => {
    const tenantId = await app.newTenant()
    let page: Page | undefined
    app.browser = async (url) => (page = await browse(url))
    const result = await begin(tenantId)
    expect(result).toEqual({
      ok: true,
      data: { connectionId: expect.any(String) as unknown, status: 'connected' },
    })
    expect(page).toMatchObject({
      status: 200,
      body: expect.stringContaining('You can close this window') as unknown,
    })
    expect(app.phases()).toEqual(['waiting', 'exchanging', 'succeeded'])

    // The redirect URI sent is the configured one, exactly; PKCE S256.
    expect(app.opened).toHaveLength(1)
    const authorize = new URL(app.opened[0]!)
    expect(authorize.searchParams.get('redirect_uri')).toBe(`http://127.0.0.1:${app.port}/callback`)
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256')
    const token = fake.requests.filter((r) => r.grantType === 'authorization_code').at(-1)
    expect(token).toBeDefined()

    const { connections, audit } = await stored(tenantId)
    expect(connections).toHaveLength(1)
    expect(connections[0]!.encryptedCredentials).toMatch(/^gcm1\./)
    expect(connections[0]!.encryptedCredentials).not.toContain(fake.refreshToken)
    expect(JSON.stringify(connections[0]!.config)).not.toContain(fake.refreshToken)
    expect(audit.map((a) => a.action).sort()).toEqual(['connector.create', 'tenant.create'])
    expect(audit.every((a) => a.userId === 'app:tester')).toBe(true)
    expect(await portIsFree(app.port)).toBe(true)

    // A second callback (a replayed one) finds nobody listening, and nothing is stored twice.
    const replay = await get(`http://127.0.0.1:${app.port}/callback?code=again&state=x`).catch(
      (err: NodeJS.ErrnoException) => err.code,
    )
    expect(replay).toBe('ECONNREFUSED')
    expect((await stored(tenantId)).connections).toHaveLength(1)
    expect(app.agent.stderr.join('\n')).not.toContain(fake.refreshToken)
  })

  const nothingStored = async (tenantId: string) => {
    const { connections, audit } = await stored(tenantId)
    expect(connections).toEqual([])
    expect(audit.map((a) => a.action)).toEqual(['tenant.create'])
    expect(await portIsFree(app.port)).toBe(true)
  }

  it('a callback with the wrong state ends the sign-in with a clear message, nothing stored', async () => {
    const tenantId = await app.newTenant()
    let page: Page | undefined
    app.browser = async (url) => {
      const state = new URL(url).searchParams.get('state')
      page = await get(`http://127.0.0.1:${app.port}/callback?code=forged&state=${state}x`)
    }
    const result = await begin(tenantId)
    expect(result).toEqual({
      ok: false,
      error: {
        code: 'vendor_auth_failed',
        message: `An answer reached http://127.0.0.1:${app.port}/callback that does not belong to this Salesforce sign-in (its state does not match), so it was refused and nothing was stored. Start the sign-in again.`,
        retryable: false,
      },
    })
    expect(page?.status).toBe(400)
    expect(app.phases()).toEqual(['waiting', 'failed'])
    await nothingStored(tenantId)
  })

  it('an error= callback ends the sign-in with the vendor’s reason, nothing stored', async () => {
    const tenantId = await app.newTenant()
    fake.refuseNextSignIn()
    app.browser = (url) => browse(url)
    const result = await begin(tenantId)
    expect(result).toMatchObject({
      ok: false,
      error: {
        code: 'vendor_auth_failed',
        message: 'Salesforce sign-in was refused: end-user denied authorization (access_denied).',
      },
    })
    await nothingStored(tenantId)
  })

  it('a sign-in nobody finishes times out with a clear message, nothing stored', async () => {
    const tenantId = await app.newTenant()
    const result = await begin(tenantId)
    expect(result).toMatchObject({
      ok: false,
      error: {
        code: 'vendor_auth_failed',
        message: `No Salesforce sign-in reached http://127.0.0.1:${app.port}/callback within 1500 ms. Start the sign-in again and finish it in the browser.`,
      },
    })
    await nothingStored(tenantId)
  })

  it('one flow at a time; Cancel ends the waiting one, nothing stored', async () => {
    const tenantId = await app.newTenant()
    const first = begin(tenantId)
    const until = Date.now() + 5_000
    while (!app.phases().includes('waiting') && Date.now() < until) {
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    const second = await begin(tenantId)
    expect(second).toMatchObject({ ok: false, error: { code: 'signin_in_progress' } })
    expect(await app.call('signin:cancel')).toEqual({ ok: true, data: { cancelled: true } })
    const result = await first
    expect(result).toMatchObject({
      ok: false,
      error: { code: 'vendor_auth_failed', message: 'The Salesforce sign-in was cancelled.' },
    })
    expect(app.phases()).toEqual(['waiting', 'cancelled'])
    await nothingStored(tenantId)
    expect(await app.call('signin:cancel')).toEqual({ ok: true, data: { cancelled: false } })
  })

  it('a redirect port in use is a clear error that names the setting', async () => {
    const tenantId = await app.newTenant()
    const blocker = net.createServer()
    await new Promise<void>((resolve) => blocker.listen(app.port, '127.0.0.1', resolve))
    try {
      const result = await begin(tenantId)
      expect(result).toMatchObject({
        ok: false,
        error: {
          code: 'config_invalid',
          message: `Port ${app.port} on 127.0.0.1 is in use, so the Salesforce sign-in cannot receive its callback there. Free it, or change Settings → Sign-in redirect port and register its callback URL with Salesforce.`,
        },
      })
    } finally {
      await new Promise<void>((resolve) => blocker.close(() => resolve()))
    }
    const { connections } = await stored(tenantId)
    expect(connections).toEqual([])
  })
})

describe('Microsoft 365 admin consent through the system browser, from the app', () => {
  let fake: MicrosoftFake
  const app = appForSignIn({
    tenantPrefix: 'consent',
    signInTimeoutMs: 5_000,
    env: {
      // The fake speaks https with the tests' own CA, as MSAL accepts no http authority.
      NODE_EXTRA_CA_CERTS: testCertificate().caFile,
    },
    startFake: async (port) =>
      (fake = await startMicrosoftFake({ replyUrls: [`http://127.0.0.1:${port}/callback`] })),
  })

  const stored = (tenantId: string) =>
    withTenant(app.owner.db, tenantId, (tx) =>
      tx.select().from(connectors).where(eq(connectors.tenantId, tenantId)),
    )
  const begin = (tenantId: string, config: Record<string, unknown> = {}) =>
    app.call('signin:begin', {
      tenantId,
      connectorType: 'o365',
      config: {
        clientId: fake.clientId,
        clientSecret: fake.clientSecret,
        authority: fake.url,
        graphBaseUrl: `${fake.url}/v1.0`,
        ...config,
      },
    })

  it('opens the admin-consent URL, checks the app-only credentials with MSAL, and stores them encrypted', async () => {
    const tenantId = await app.newTenant()
    let page: Page | undefined
    app.browser = async (url) => (page = await browse(url))
    const result = await begin(tenantId)
    expect(result, JSON.stringify(result)).toMatchObject({
      ok: true,
      data: { status: 'connected' },
    })
    expect(page).toMatchObject({
      status: 200,
      body: expect.stringContaining('You can close this window') as unknown,
    })

    const consent = new URL(app.opened[0]!)
    expect(consent.origin + consent.pathname).toBe(`${fake.url}/organizations/v2.0/adminconsent`)
    expect(Object.fromEntries(consent.searchParams)).toMatchObject({
      client_id: fake.clientId,
      scope: `${fake.url}/.default`,
      redirect_uri: `http://127.0.0.1:${app.port}/callback`,
    })
    // MSAL's client-credentials grant, then the Graph read only a consented app may make.
    expect(fake.requests.filter((r) => r.grantType === 'client_credentials').at(-1)).toMatchObject({
      status: 200,
      scope: `${fake.url}/.default`,
    })
    expect(fake.requests.filter((r) => r.path === '/v1.0/organization').at(-1)?.status).toBe(200)

    const rows = await stored(tenantId)
    expect(rows).toHaveLength(1)
    expect(rows[0]!.config).toMatchObject({ tenantId: fake.tenantId, clientId: fake.clientId })
    expect(JSON.stringify(rows[0]!.config)).not.toContain(fake.clientSecret)
    expect(rows[0]!.encryptedCredentials).toMatch(/^gcm1\./)
    expect(rows[0]!.encryptedCredentials).not.toContain(fake.clientSecret)
    expect(app.agent.stderr.join('\n')).not.toContain(fake.clientSecret)
    expect(await portIsFree(app.port)).toBe(true)
  })

  it('a declined consent (error=) ends with the reason, nothing stored, the port closed', async () => {
    const tenantId = await app.newTenant()
    fake.declineNextConsent()
    app.browser = (url) => browse(url)
    const result = await begin(tenantId)
    expect(result).toEqual({
      ok: false,
      error: {
        code: 'vendor_auth_failed',
        message:
          'Microsoft 365 admin consent was not granted: AADSTS65004: User declined to consent to access the app. (access_denied).',
        retryable: false,
      },
    })
    expect(await stored(tenantId)).toEqual([])
    expect(await portIsFree(app.port)).toBe(true)
  })

  it('a wrong client secret is named after consent, and nothing is stored', async () => {
    const tenantId = await app.newTenant()
    app.browser = (url) => browse(url)
    const result = await begin(tenantId, { clientSecret: 'not-the-secret-value' })
    expect(result.ok).toBe(false)
    if (result.ok) return
    expect(result.error.code).toBe('vendor_auth_failed')
    expect(result.error.message).toMatch(
      /^Microsoft 365 refused the app's credentials: AADSTS7000215: Invalid client secret provided\..* Check the client secret: use its Value, not its Secret ID/,
    )
    expect(result.error.message).not.toContain('not-the-secret-value')
    expect(await stored(tenantId)).toEqual([])
  })
})
