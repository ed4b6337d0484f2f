import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { describe, expect, it } from 'vitest'
import { registerSecret } from '../../shared/redact.js'
import { createMainLog } from '../../src-main/log.js'
import { CallFailure, dispatch } from '../../shared/contract.js'
import { AppError, VendorError } from '../../shared/errors.js'
import { forwardedChannels, ipc, ipcChannels, mainChannelNames } from '../../shared/ipc.js'
import { agentRpc } from '../../shared/rpc.js'
import { agentEnvironment, databaseUrl } from '../../src-main/agent/environment.js'
import { checkExternalUrl } from '../../src-main/external.js'
import { isTrustedSender } from '../../src-main/ipc/sender.js'
import { createGtmApi } from '../../src-main/preload/api.js'
import { memorySettings, SettingsError, SettingsStore } from '../../src-main/settings/store.js'
import { settingsSchema } from '../../shared/settings.js'

describe('the shared dispatch (both hops)', () => {
  it('refuses a bad payload with an error that names the field, without running the handler', async () => {
    let ran = false
    const result = await dispatch(ipc, 'tenants:create', { id: 'acme', name: 42 }, () => {
      ran = true
      return { id: 'acme', name: 'x' }
    })
    expect(ran).toBe(false)
    expect(result).toEqual({
      ok: false,
      error: {
        code: 'ipc_input_invalid',
        message:
          'The request to tenants:create was not valid at "name": Invalid input: expected string, received number.',
        retryable: false,
      },
    })
  })

  it('strips what the output contract does not list, so nothing extra leaves', async () => {
    const result = await dispatch(ipc, 'app:info', undefined, () => ({
      name: 'GTM Clarity Connect',
      version: '1.2.3',
      accessToken: 'secret-token',
    }))
    expect(result).toEqual({ ok: true, data: { name: 'GTM Clarity Connect', version: '1.2.3' } })
  })

  it('refuses an output that breaks the contract, and reports it internally only', async () => {
    const reported: string[] = []
    const result = await dispatch(ipc, 'app:info', undefined, () => ({ name: '' }) as never, {
      reportInternal: (message) => reported.push(message),
    })
    expect(result).toEqual({
      ok: false,
      error: {
        code: 'internal',
        message: 'app:info returned a malformed result.',
        retryable: false,
      },
    })
    expect(reported).toEqual(['app:info returned a result that does not match the contract'])
  })

  it('keeps an AppError’s code and message, says whether to retry, and hides anything else', async () => {
    const vendor = await dispatch(ipc, 'app:info', undefined, () => {
      throw new VendorError('vendor_unavailable', 'Salesforce is down (503): try again later.')
    })
    expect(vendor).toEqual({
      ok: false,
      error: {
        code: 'vendor_unavailable',
        message: 'Salesforce is down (503): try again later.',
        retryable: true,
      },
    })
    const auth = await dispatch(ipc, 'app:info', undefined, () => {
      throw new AppError('connector_not_connected', 'Connect Salesforce first.')
    })
    expect(auth).toMatchObject({
      ok: false,
      error: { code: 'connector_not_connected', retryable: false },
    })
    const passed = await dispatch(ipc, 'app:info', undefined, () => {
      throw CallFailure.of('rpc_timeout', 'The agent did not answer.')
    })
    expect(passed).toEqual({
      ok: false,
      error: { code: 'rpc_timeout', message: 'The agent did not answer.', retryable: true },
    })
    const unknown = await dispatch(ipc, 'app:info', undefined, () => {
      throw new Error('select * from connectors where token = abc')
    })
    expect(unknown).toEqual({
      ok: false,
      error: {
        code: 'internal',
        message: 'Something went wrong. Details are in the app log.',
        retryable: false,
      },
    })
  })

  it('gives the handler a signal that fires when the caller gives up', async () => {
    const controller = new AbortController()
    const seen: boolean[] = []
    const running = dispatch(
      ipc,
      'app:info',
      undefined,
      async (_input, { signal }) => {
        await new Promise((resolve) => signal.addEventListener('abort', resolve))
        seen.push(signal.aborted)
        return { name: 'a', version: '1' }
      },
      { signal: controller.signal },
    )
    controller.abort()
    await running
    expect(seen).toEqual([true])
  })
})

describe('the contract', () => {
  it('forwards every agent method but signin:run, which the app reaches through signin:begin', () => {
    expect(forwardedChannels.sort()).toEqual(
      Object.keys(agentRpc)
        .filter((m) => m !== 'signin:run')
        .sort(),
    )
    for (const channel of forwardedChannels) expect(ipc[channel]).toBe(agentRpc[channel])
    expect(ipcChannels.sort()).toEqual([...mainChannelNames, ...forwardedChannels].sort())
  })

  it('marks as mutations exactly the channels that change tenant data (each audited in the agent)', () => {
    const mutations = ipcChannels.filter((c) => ipc[c].kind === 'mutation').sort()
    expect(mutations).toEqual(
      [
        'agreements:accept',
        'connections:connect',
        'connections:disconnect',
        'mappings:reset',
        'mappings:set',
        'schedules:pause',
        'schedules:resume',
        'schedules:set',
        'signin:begin',
        'sync:run',
        'quarantine:retry',
        'tenants:create',
        'writeback:set',
      ].sort(),
    )
  })
})

describe('which callers main answers', () => {
  const renderer = 'file:///opt/GTM%20Clarity%20Connect/resources/app.asar/out/renderer/index.html'

  it('accepts our renderer’s top frame only', () => {
    expect(isTrustedSender({ url: renderer, parent: null }, renderer)).toBe(true)
    expect(isTrustedSender({ url: `${renderer}#/connectors`, parent: null }, renderer)).toBe(true)
    // A frame inside our page (an embedded vendor page), even one showing our URL.
    expect(isTrustedSender({ url: renderer, parent: { url: renderer } }, renderer)).toBe(false)
    expect(isTrustedSender({ url: 'https://evil.example/', parent: null }, renderer)).toBe(false)
    expect(isTrustedSender({ url: 'file:///tmp/index.html', parent: null }, renderer)).toBe(false)
    expect(isTrustedSender(null, renderer)).toBe(false)
  })

  it('accepts the dev server’s origin only, under npm run dev', () => {
    const dev = 'http://localhost:5173/'
    expect(isTrustedSender({ url: 'http://localhost:5173/#/x', parent: null }, dev)).toBe(true)
    expect(isTrustedSender({ url: 'http://localhost:5174/', parent: null }, dev)).toBe(false)
    expect(isTrustedSender({ url: 'not a url', parent: null }, dev)).toBe(false)
  })

  it('opens only https links without credentials in the system browser', () => {
    expect(checkExternalUrl('https://login.salesforce.com/services/oauth2/authorize?x=1')).toEqual({
      ok: true,
      url: 'https://login.salesforce.com/services/oauth2/authorize?x=1',
    })
    expect(checkExternalUrl('http://login.salesforce.com/')).toEqual({
      ok: false,
      reason: 'http: links are not opened',
    })
    expect(checkExternalUrl('file:///etc/passwd')).toMatchObject({ ok: false })
    expect(checkExternalUrl('javascript:alert(1)')).toMatchObject({ ok: false })
    expect(checkExternalUrl('https://user:pw@example.com/')).toEqual({
      ok: false,
      reason: 'it carries credentials',
    })
    expect(checkExternalUrl('nonsense')).toEqual({ ok: false, reason: 'it is not a valid URL' })
  })
})

describe('window.gtm, built from the contract', () => {
  it('has one function per channel and delivers only the events asked for', async () => {
    const calls: Array<[string, unknown]> = []
    let deliver: (message: { event: string; data: unknown }) => void = () => undefined
    let unsubscribed = 0
    const gtm = createGtmApi(
      async (channel, input) => {
        calls.push([channel, input])
        return { ok: true, data: null }
      },
      (listener) => {
        deliver = listener
        return () => (unsubscribed += 1)
      },
    )
    await gtm.app.info()
    await gtm.connections.list({ tenantId: 'acme' })
    await gtm.signin.begin({ tenantId: 'acme', connectorType: 'salesforce', config: {} })
    expect(calls).toEqual([
      ['app:info', undefined],
      ['connections:list', { tenantId: 'acme' }],
      ['signin:begin', { tenantId: 'acme', connectorType: 'salesforce', config: {} }],
    ])
    const progress: unknown[] = []
    const stop = gtm.on('sync:progress', (data) => progress.push(data))
    deliver({ event: 'agent:status', data: { state: 'ready' } })
    deliver({ event: 'sync:progress', data: { pages: 1 } })
    expect(progress).toEqual([{ pages: 1 }])
    stop()
    expect(unsubscribed).toBe(1)
    expect(() => gtm.on('nothing' as 'sync:progress', () => undefined)).toThrow(
      'There is no event named "nothing".',
    )
  })
})

describe('settings', () => {
  it('starts from the defaults: embedded database and Temporal, the Salesforce redirect port', () => {
    const store = new SettingsStore(memorySettings())
    expect(store.get()).toEqual({
      windowBounds: null,
      selectedTenant: null,
      database: { mode: 'embedded' },
      temporal: { mode: 'embedded' },
      redirectPort: 17865,
      dataFolder: null,
    })
  })

  it('validates every change before keeping it, names what is wrong, and keeps what was there', () => {
    const backend = memorySettings()
    const store = new SettingsStore(backend)
    const { changed } = store.update({
      database: { mode: 'external', host: 'db.internal', database: 'gtm', user: 'gtm_app' },
    })
    expect(changed).toEqual(['database'])
    expect(store.get().database).toEqual({
      mode: 'external',
      host: 'db.internal',
      port: 5432,
      database: 'gtm',
      user: 'gtm_app',
      ssl: true,
    })
    const before = structuredClone(backend.read())
    expect(() => store.update({ redirectPort: 70_000 })).toThrow(
      new SettingsError('Setting redirectPort: A port is between 1 and 65535.'),
    )
    expect(() => store.update({ temporal: { mode: 'external', address: 'temporal' } })).toThrow(
      'Setting temporal.address: Give the address as host:port, e.g. temporal:7233.',
    )
    expect(() =>
      store.update({
        database: { mode: 'external', host: 'db; rm -rf', database: 'x', user: 'y' },
      }),
    ).toThrow(/^Setting database\.host: /)
    expect(backend.read()).toEqual(before)
    expect(store.update({ redirectPort: 17865 }).changed).toEqual([])
  })

  it('keeps the valid part of settings a damaged file holds', () => {
    const store = new SettingsStore(memorySettings({ redirectPort: 'x', selectedTenant: 'acme' }))
    expect(store.get()).toMatchObject({ redirectPort: 17865, selectedTenant: 'acme' })
  })
})

describe('the agent’s environment, from the settings and the keychain', () => {
  const key = 'b'.repeat(64)

  it('hands over the key, the user and the data folder, and drops inherited agent variables', () => {
    const env = agentEnvironment({
      settings: settingsSchema.parse({}),
      encryptionKey: key,
      databasePassword: null,
      defaultDataFolder: '/home/ann/.config/GTM Clarity Connect/agent',
      inherited: {
        PATH: '/usr/bin',
        DATABASE_URL: 'postgres://elsewhere/db',
        CONNECTOR_ENCRYPTION_KEY_PREVIOUS: 'c'.repeat(64),
        TEMPORAL_ADDRESS: 'old:7233',
      },
    })
    expect(env).toMatchObject({
      PATH: '/usr/bin',
      CONNECTOR_ENCRYPTION_KEY: key,
      GTM_DATA_DIR: '/home/ann/.config/GTM Clarity Connect/agent',
      GTM_USER: expect.stringMatching(/^app:/) as unknown,
    })
    expect(env).not.toHaveProperty('DATABASE_URL')
    expect(env).not.toHaveProperty('TEMPORAL_ADDRESS')
    expect(env).not.toHaveProperty('CONNECTOR_ENCRYPTION_KEY_PREVIOUS')
  })

  it('points the agent at a shared Postgres and Temporal', () => {
    const settings = settingsSchema.parse({
      database: {
        mode: 'external',
        host: 'db.internal',
        port: 6432,
        database: 'gtm',
        user: 'app@corp',
      },
      temporal: { mode: 'external', address: 'temporal.internal:7233', namespace: 'gtm' },
      dataFolder: '/srv/gtm',
    })
    const env = agentEnvironment({
      settings,
      encryptionKey: key,
      databasePassword: 'p@ss/word#1',
      defaultDataFolder: '/unused',
    })
    expect(env).toMatchObject({
      DATABASE_URL: 'postgres://app%40corp:p%40ss%2Fword%231@db.internal:6432/gtm?sslmode=require',
      TEMPORAL_ADDRESS: 'temporal.internal:7233',
      TEMPORAL_NAMESPACE: 'gtm',
      GTM_DATA_DIR: '/srv/gtm',
    })
    const url = new URL(env['DATABASE_URL']!)
    expect(decodeURIComponent(url.password)).toBe('p@ss/word#1')
    expect(
      databaseUrl(
        { mode: 'external', host: 'h', port: 5432, database: 'd', user: 'u', ssl: false },
        null,
      ),
    ).toBe('postgres://u@h:5432/d')
  })
})

describe('main’s log', () => {
  it('redacts like the agent: secret keys, bearer tokens and known secret values, in its own lines and the agent’s', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'gtm-main-log-'))
    try {
      const log = createMainLog({ dir, echo: false })
      registerSecret('s3cr3t-client-value-123')
      log('info', 'signed in', {
        refreshToken: '5Aep861TSESvWeug_xvFHRBTTbf_YrTWgEyjBJ',
        header: 'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.abc',
        note: 'the secret is s3cr3t-client-value-123',
      })
      log.agentLine('{"msg":"token refreshed","detail":"s3cr3t-client-value-123"}')
      const text = readFileSync(path.join(dir, 'main.log'), 'utf8')
      expect(text.split('\n').filter(Boolean)).toHaveLength(2)
      expect(text).toContain('"msg":"signed in"')
      expect(text).toContain('[REDACTED]')
      for (const secret of [
        '5Aep861TSESvWeug',
        'eyJhbGciOiJIUzI1NiJ9',
        's3cr3t-client-value-123',
      ]) {
        expect(text).not.toContain(secret)
      }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
