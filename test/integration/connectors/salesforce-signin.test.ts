import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { eq } from 'drizzle-orm'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { auditLog, connectors } from '../../../db/schema/index.js'
import { VendorError } from '../../../shared/errors.js'
import {
  salesforceSignIn,
  salesforceSignInConfigSchema,
} from '../../../src-agent/connectors/salesforce/sign-in.js'
import { signInThroughLoopback } from '../../../src-agent/signin/loopback.js'
import { startSalesforceFake, type SalesforceFake } from '../../fakes/salesforce.js'
import { TEST_KEY_HEX } from '../../helpers/agent.js'
import { browse, get } from '../../helpers/browser.js'
import { repoRoot, runCli, type CliResult } from '../../helpers/cli.js'
import { databaseUrl, ownerDb } from '../../helpers/db.js'
import { freePort } from '../../helpers/ports.js'

describe('Salesforce sign-in (web-server flow with PKCE) through the loopback', () => {
  let fake: SalesforceFake
  afterEach(async () => {
    await fake.close()
  })

  it('opens the authorize URL with PKCE S256 and the exact callback, and completes to a connect config', async () => {
    const port = await freePort()
    const callback = `http://127.0.0.1:${port}/callback`
    fake = await startSalesforceFake({ callbackUrls: [callback] })
    const config = salesforceSignInConfigSchema.parse({
      loginUrl: fake.url,
      clientId: fake.clientId,
      bulkPollIntervalMs: 5,
    })
    let page: Awaited<ReturnType<typeof browse>> | undefined
    const result = await signInThroughLoopback(salesforceSignIn, config, {
      vendor: 'Salesforce',
      port,
      open: async (url) => {
        page = await browse(url)
      },
    })
    expect(page).toMatchObject({
      status: 200,
      body: expect.stringContaining('You can close this window') as unknown,
    })
    expect(result).toMatchObject({
      instanceUrl: fake.url,
      loginUrl: fake.url,
      clientId: fake.clientId,
      refreshToken: fake.refreshToken,
      accessToken: fake.accessToken,
      bulkPollIntervalMs: 5,
    })
    const authorize = fake.requests.find((r) => r.path === '/services/oauth2/authorize')
    expect(authorize?.query).toMatchObject({
      response_type: 'code',
      client_id: fake.clientId,
      redirect_uri: callback,
      scope: 'api refresh_token',
      code_challenge_method: 'S256',
    })
    expect(authorize?.query.code_challenge).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(fake.requests.filter((r) => r.grantType === 'authorization_code')).toHaveLength(1)
  })

  it('turns a refused consent into a VendorError with the reason, and asks for no token', async () => {
    fake = await startSalesforceFake()
    fake.refuseNextSignIn()
    const config = salesforceSignInConfigSchema.parse({
      loginUrl: fake.url,
      clientId: fake.clientId,
    })
    const error = await signInThroughLoopback(salesforceSignIn, config, {
      vendor: 'Salesforce',
      port: 0,
      open: async (url) => {
        const page = await browse(url)
        expect(page.body).toContain(
          'Salesforce did not grant access: end-user denied authorization',
        )
      },
    }).then(
      () => undefined,
      (err: unknown) => err,
    )
    expect(error).toBeInstanceOf(VendorError)
    expect((error as VendorError).code).toBe('vendor_auth_failed')
    expect((error as VendorError).userMessage).toBe(
      'Salesforce sign-in was refused: end-user denied authorization (access_denied).',
    )
    expect(fake.requests.filter((r) => r.path === '/services/oauth2/token')).toHaveLength(0)
  })
})

describe('gtm-agent connect salesforce --browser', () => {
  let fake: SalesforceFake
  let dir: string
  let port: number
  const db = ownerDb()
  const env = (extra: Record<string, string> = {}) => ({
    DATABASE_URL: databaseUrl(),
    CONNECTOR_ENCRYPTION_KEY: TEST_KEY_HEX,
    // No real browser: the test plays it from the URL printed on stderr.
    BROWSER: '',
    ...extra,
  })
  /** `connect salesforce --browser` for a tenant and sign-in config, on the registered port. */
  const browserConnect = (tenant: string, config: string) => [
    'connect',
    'salesforce',
    '--tenant',
    tenant,
    '--config',
    config,
    '--browser',
    '--redirect-port',
    String(port),
  ]

  beforeAll(async () => {
    port = await freePort()
    fake = await startSalesforceFake({ callbackUrls: [`http://127.0.0.1:${port}/callback`] })
    dir = await mkdtemp(path.join(os.tmpdir(), 'gtm-sf-signin-'))
  })
  afterAll(async () => {
    await fake.close()
    await rm(dir, { recursive: true, force: true })
    await db.close()
  })

  async function newTenant(): Promise<string> {
    const tenant = `sfsignin-${randomBytes(4).toString('hex')}`
    const created = await runCli(['tenants', 'create', tenant, '--name', 'SF sign-in'], env())
    expect(created.code, created.stderr).toBe(0)
    return tenant
  }

  async function signInConfig(extra: Record<string, unknown> = {}): Promise<string> {
    const file = path.join(dir, `${randomBytes(4).toString('hex')}.json`)
    await writeFile(
      file,
      JSON.stringify({
        loginUrl: fake.url,
        clientId: fake.clientId,
        bulkPollIntervalMs: 5,
        ...extra,
      }),
    )
    return file
  }

  /** Runs the CLI; when it prints the sign-in URL, `browser` gets it (once). */
  async function connectInBrowser(
    args: string[],
    browser: (url: string) => Promise<void>,
    extraEnv: Record<string, string> = {},
    onStart?: (child: ChildProcess) => void,
  ): Promise<CliResult & { url: string | undefined }> {
    let url: string | undefined
    let browsing: Promise<void> | undefined
    const result = await runCli(args, env(extraEnv), {
      onStart: (child: ChildProcess) => {
        onStart?.(child)
        let seen = ''
        child.stderr?.on('data', (chunk: Buffer | string) => {
          seen += String(chunk)
          const match = /^Open this URL to sign in: (\S+)$/m.exec(seen)
          if (match && !url) {
            url = match[1]!
            browsing = browser(url)
          }
        })
      },
    })
    await browsing
    return { ...result, url }
  }

  async function storedConnection(tenant: string) {
    return db.db.select().from(connectors).where(eq(connectors.tenantId, tenant))
  }

  it('prints the sign-in URL, takes the callback, stores the connection, and the connection syncs', async () => {
    const tenant = await newTenant()
    const config = await signInConfig()
    let page: Awaited<ReturnType<typeof browse>> | undefined
    const connected = await connectInBrowser(browserConnect(tenant, config), async (url) => {
      page = await browse(url)
    })
    expect(connected.code, connected.stderr).toBe(0)
    expect(connected.url).toMatch(new RegExp(`^${fake.url}/services/oauth2/authorize\\?`))
    expect(new URL(connected.url!).searchParams.get('redirect_uri')).toBe(
      `http://127.0.0.1:${port}/callback`,
    )
    expect(page?.status).toBe(200)
    expect(connected.stdout).toMatch(
      new RegExp(`^Connected salesforce for tenant "${tenant}" \\(healthy, \\d+ ms\\)\\.`),
    )

    const [row] = await storedConnection(tenant)
    expect(row).toMatchObject({ type: 'salesforce', status: 'connected' })
    // The config column keeps the settings, never a token.
    expect(row!.config).toMatchObject({ instanceUrl: fake.url, clientId: fake.clientId })
    expect(JSON.stringify(row!.config)).not.toMatch(/refreshToken|accessToken/)
    const audit = await db.db.select().from(auditLog).where(eq(auditLog.tenantId, tenant))
    expect(audit.map((a) => a.action)).toContain('connector.create')

    const synced = await runCli(['sync', 'salesforce', '--tenant', tenant, '--json'], env())
    expect(synced.code, synced.stderr).toBe(0)
    expect(JSON.parse(synced.stdout)).toMatchObject({ status: 'succeeded', created: 80, errors: 0 })

    // No token, code or verifier reaches the terminal.
    const tokenCall = fake.requests.filter((r) => r.grantType === 'authorization_code')
    expect(tokenCall).toHaveLength(1)
    for (const out of [connected, synced]) {
      for (const token of fake.issuedTokens()) expect(out.stdout + out.stderr).not.toContain(token)
    }
    const location = new URL(page!.visited[1]!)
    expect(connected.stdout + connected.stderr).not.toContain(location.searchParams.get('code'))
  })

  it('opens the browser named by BROWSER', async () => {
    const tenant = await newTenant()
    const config = await signInConfig()
    const browser = `${process.execPath} ${path.join(repoRoot, 'test/helpers/browser-command.mjs')}`
    const result = await runCli(browserConnect(tenant, config), env({ BROWSER: browser }))
    expect(result.code, result.stderr).toBe(0)
    expect(result.stderr).toContain('Opened it in your browser.')
    expect(await storedConnection(tenant)).toHaveLength(1)
  })

  it('refused consent: one error line, nothing stored', async () => {
    const tenant = await newTenant()
    const config = await signInConfig()
    fake.refuseNextSignIn()
    const result = await connectInBrowser(browserConnect(tenant, config), async (url) => {
      await browse(url)
    })
    expect(result.code).toBe(1)
    const errors = result.stderr.split('\n').filter((line) => line.startsWith('error:'))
    expect(errors).toEqual([
      'error: Salesforce sign-in was refused: end-user denied authorization (access_denied).',
    ])
    expect(result.stdout).toBe('')
    expect(await storedConnection(tenant)).toHaveLength(0)
  })

  it('a callback with another state is refused and ends the sign-in: one error line, nothing stored', async () => {
    const tenant = await newTenant()
    const config = await signInConfig()
    const exchangesBefore = fake.requests.filter((r) => r.grantType === 'authorization_code').length
    const pages: number[] = []
    const result = await connectInBrowser(browserConnect(tenant, config), async (url) => {
      const redirectUri = new URL(url).searchParams.get('redirect_uri')!
      // A forged callback: a code of the attacker's, a state of its own.
      const forged = new URL(redirectUri)
      forged.searchParams.set('code', 'aPrxATTACKER')
      forged.searchParams.set('state', 'forged')
      pages.push((await get(forged.toString())).status)
    })
    expect(pages).toEqual([400])
    expect(result.code).toBe(1)
    const errors = result.stderr.split('\n').filter((line) => line.startsWith('error:'))
    expect(errors).toEqual([
      `error: An answer reached http://127.0.0.1:${port}/callback that does not belong to this Salesforce sign-in (its state does not match), so it was refused and nothing was stored. Start the sign-in again.`,
    ])
    // The forged code never reached the token endpoint.
    const exchanges = fake.requests.filter((r) => r.grantType === 'authorization_code')
    expect(exchanges).toHaveLength(exchangesBefore)
    expect(await storedConnection(tenant)).toHaveLength(0)
  })

  it('Ctrl-C while waiting cancels the sign-in in one error line and frees the port', async () => {
    const tenant = await newTenant()
    const config = await signInConfig()
    let child: ChildProcess | undefined
    const result = await connectInBrowser(
      browserConnect(tenant, config),
      async () => {
        child?.kill('SIGINT')
      },
      {},
      (started) => {
        child = started
      },
    )
    expect(result.code).toBe(1)
    const errors = result.stderr.split('\n').filter((line) => line.startsWith('error:'))
    expect(errors).toEqual(['error: The Salesforce sign-in was cancelled.'])
    expect(await storedConnection(tenant)).toHaveLength(0)
    const server = net.createServer()
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, '127.0.0.1', resolve)
    })
    await new Promise<void>((resolve) => server.close(() => resolve()))
  })

  it('refuses, in one error line and before any sign-in, what sign-in cannot use', async () => {
    const tenant = await newTenant()
    const withToken = await signInConfig({ refreshToken: 'a-stale-refresh-token' })
    const cases: Array<{ args: string[]; extraEnv?: Record<string, string>; message: RegExp }> = [
      {
        args: ['connect', 'salesforce', '--tenant', tenant, '--config', withToken, '--browser'],
        message:
          /^error: Invalid sign-in config for salesforce: "refreshToken": is obtained by signing in/,
      },
      {
        args: [
          'connect',
          'salesforce',
          '--tenant',
          tenant,
          '--config',
          await signInConfig(),
          '--redirect-port',
          '1',
        ],
        message: /^error: --redirect-port is only used with --browser\.$/,
      },
      {
        args: [
          'connect',
          'test-pages',
          '--tenant',
          tenant,
          '--config',
          await signInConfig(),
          '--browser',
        ],
        extraEnv: { GTM_CONNECTOR_MODULES: 'test/helpers/test-connector.ts' },
        message:
          /^error: Test pages \(test-pages\) has no browser sign-in: connect it without --browser/,
      },
      {
        args: [
          'connect',
          'salesforce',
          '--tenant',
          'no-such-tenant',
          '--config',
          await signInConfig(),
          '--browser',
        ],
        message: /no-such-tenant/,
      },
    ]
    for (const { args, extraEnv, message } of cases) {
      const result = await runCli(args, env(extraEnv))
      expect(result.code, args.join(' ')).toBe(1)
      const lines = result.stderr.split('\n').filter((line) => line.trim() !== '')
      expect(lines, args.join(' ')).toHaveLength(1)
      expect(lines[0]).toMatch(message)
    }
    expect(await storedConnection(tenant)).toHaveLength(0)
  })
})
