/// <reference lib="dom" />
// Functions passed to page.evaluate run in the page, so this file sees DOM types.
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Page } from '@playwright/test'
import type { CallResult } from '../../shared/contract.js'
import type { IpcChannel } from '../../shared/ipc.js'
import { startDevServer, type StartedDevServer } from '../../src-agent/temporal/dev-server.js'
import { startDelivrFake, type DelivrFake } from '../fakes/delivr.js'
import { startMicrosoftFake, type MicrosoftFake } from '../fakes/microsoft.js'
import { startSalesforceFake, type SalesforceFake } from '../fakes/salesforce.js'
import {
  accessibilityViolations,
  launchAppBrowser,
  screenshot,
  type AppBrowser,
} from '../helpers/app-browser.js'
import { browse } from '../helpers/browser.js'
import { databaseUrl, uniqueTenantId } from '../helpers/db.js'
import {
  appHandlers,
  callData,
  startAgentProcess,
  type AgentUnderTest,
} from '../helpers/desktop.js'
import { memoryLogger } from '../helpers/agent.js'
import { freePort } from '../helpers/ports.js'
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.js'
import { testTemporalCli } from '../helpers/temporal.js'
import { testCertificate } from '../helpers/tls.js'

/**
 * The screens as an admin uses them: Chromium on the built renderer, window.gtm over main's real
 * handlers, the real agent process, Postgres (behind a proxy a test can cut), a Temporal dev
 * server and the loopback vendor fakes.
 */
describe('the desktop screens', () => {
  let temporal: StartedDevServer
  let proxy: TcpProxy
  let salesforce: SalesforceFake
  let delivr: DelivrFake
  let microsoft: MicrosoftFake
  let agent: AgentUnderTest
  let app: AppBrowser
  let call: (channel: IpcChannel, input?: unknown) => Promise<CallResult<unknown>>
  const copied: string[] = []
  /** Sign-in pages the app asked the system browser to open. */
  const opened: string[] = []
  /** While set, the system browser opens nothing until the test calls it. */
  let holdBrowser: ((url: string) => void) | null = null

  beforeAll(async () => {
    const port = await freePort()
    const database = new URL(databaseUrl())
    proxy = await startTcpProxy({ host: database.hostname, port: Number(database.port || 5432) })
    database.port = String(proxy.port)
    temporal = await startDevServer({ cliPath: testTemporalCli(), log: memoryLogger('warn').log })
    salesforce = await startSalesforceFake({ callbackUrls: [`http://127.0.0.1:${port}/callback`] })
    delivr = await startDelivrFake()
    microsoft = await startMicrosoftFake({ replyUrls: [`http://127.0.0.1:${port}/callback`] })
    delivr.addSignal({ id: 'sig-1', occurredAt: new Date(Date.now() - 3_600_000).toISOString() })
    agent = await startAgentProcess({
      env: {
        DATABASE_URL: database.toString(),
        TEMPORAL_ADDRESS: temporal.address,
        // The Microsoft fake speaks https with the tests' own CA (MSAL takes no http authority).
        NODE_EXTRA_CA_CERTS: testCertificate().caFile,
      },
      supervisor: {
        onEvent: (event, data) => app?.emit(event, data),
        onStatus: (status) => app?.emit('agent:status', status),
      },
    })
    call = appHandlers(agent, {
      redirectPort: port,
      // The system browser: it follows the vendor's redirects back to the loopback.
      openSignInPage: (url) => {
        opened.push(url)
        if (holdBrowser) holdBrowser(url)
        else void browse(url).catch(() => undefined)
      },
      signInTimeoutMs: 60_000,
      copyText: (text) => copied.push(text),
    }).call
    app = await launchAppBrowser(call)
  }, 180_000)

  afterAll(async () => {
    await app?.close()
    await agent?.close()
    await salesforce?.close()
    await delivr?.close()
    await microsoft?.close()
    await temporal?.stop()
    await proxy?.close()
  })

  const newTenant = async (name: string): Promise<string> => {
    const id = uniqueTenantId('ui')
    callData(await call('tenants:create', { id, name }))
    return id
  }
  const connectSalesforce = async (tenantId: string): Promise<void> => {
    callData(
      await call('connections:connect', {
        tenantId,
        connectorType: 'salesforce',
        config: { ...salesforce.connectConfig(), bulkPollIntervalMs: 5 },
      }),
    )
  }
  /** Opens the app with `tenantId` selected (remembered as the last one used). */
  const openApp = async (
    tenantId: string,
    colorScheme: 'light' | 'dark' = 'light',
    options: { clock?: boolean } = {},
  ): Promise<Page> => {
    const page = await app.open({ colorScheme })
    await page.evaluate((id) => window.localStorage.setItem('gtm.tenant', id), tenantId)
    // A clock the test can move forward (page.clock), from now on and for every timer the app sets.
    if (options.clock) await page.clock.install()
    await page.reload()
    await page.getByLabel('Tenant', { exact: true }).waitFor()
    expect(await page.getByLabel('Tenant', { exact: true }).inputValue()).toBe(tenantId)
    return page
  }
  const openConnector = async (page: Page, name: string): Promise<void> => {
    await page.getByRole('region', { name }).getByRole('button', { name: 'Open' }).click()
    await page.getByRole('tab', { name: 'Overview' }).waitFor()
  }

  it('connects an API-key connector: a wrong key fails its setup checks and says why, the right one passes', async () => {
    const tenantId = await newTenant('Connect tenant')
    const page = await openApp(tenantId)
    const card = page.getByRole('region', { name: 'Delivr.ai' })
    await card.getByRole('button', { name: 'Connect' }).click()
    await page.getByRole('heading', { name: 'Connect Delivr.ai' }).waitFor()

    // Submitting empty names the required field.
    await page.getByRole('button', { name: 'Check and connect' }).click()
    const keyField = page.getByLabel(/API key/)
    expect(await keyField.getAttribute('aria-invalid')).toBe('true')

    await page.getByLabel(/Base URL/).fill(delivr.url)
    await keyField.fill('dlvr_live_wrong_key_000000')
    await page.getByRole('button', { name: 'Check and connect' }).click()
    const auth = page.getByTestId('check-auth')
    await auth.waitFor()
    await page.getByRole('button', { name: 'Check and connect' }).waitFor()
    expect(await auth.textContent()).toMatch(/failed/)
    expect(await page.getByTestId('check-reachable').textContent()).toMatch(/skipped/)
    await screenshot(page, 'connect-checks-failed')
    // What the checks say never repeats the key.
    expect(
      await page
        .getByRole('region', { name: 'Delivr.ai settings' })
        .locator('.checks')
        .textContent(),
    ).not.toContain('dlvr_live_wrong_key_000000')
    const stored = callData(await call('connections:list', { tenantId })) as unknown[]
    expect(stored).toHaveLength(0)

    await keyField.fill(delivr.apiKey)
    await page.getByRole('button', { name: 'Check and connect' }).click()
    await page.getByRole('tab', { name: 'Overview' }).waitFor()
    const connections = callData(await call('connections:list', { tenantId })) as Array<{
      connectorType: string
    }>
    expect(connections.map((c) => c.connectorType)).toEqual(['delivrai'])
    expect(await page.getByTestId('detail-status').textContent()).toContain('Connected')
    await page.close()
  })

  it('fills and submits the connect form with the keyboard alone', async () => {
    const tenantId = await newTenant('Keyboard tenant')
    const page = await openApp(tenantId)
    await page
      .getByRole('region', { name: 'Delivr.ai' })
      .getByRole('button', { name: 'Connect' })
      .focus()
    await page.keyboard.press('Enter')
    await page.getByRole('heading', { name: 'Connect Delivr.ai' }).waitFor()
    // Tab reaches the first field, and every field after it, in order.
    const reached: string[] = []
    for (let i = 0; i < 20; i++) {
      await page.keyboard.press('Tab')
      const focused = await page.evaluate(() => ({
        id: document.activeElement?.id ?? '',
        text: document.activeElement?.textContent ?? '',
      }))
      if (focused.id.startsWith('cfg-')) reached.push(focused.id)
      if (focused.id === 'cfg-apiKey') await page.keyboard.type(delivr.apiKey)
      if (focused.id === 'cfg-baseUrl') await page.keyboard.type(delivr.url)
      if (focused.text === 'Check and connect') break
    }
    expect(reached).toEqual(['cfg-apiKey', 'cfg-baseUrl'])
    // Focus is on the submit button now: Enter presses it.
    await page.keyboard.press('Enter')
    await page.getByRole('tab', { name: 'Overview' }).waitFor()
    await page.close()
  })

  it('signs in to Salesforce through the loopback, with a waiting state, and lands on the connection', async () => {
    const tenantId = await newTenant('Sign-in tenant')
    const page = await openApp(tenantId)
    await page
      .getByRole('region', { name: 'Salesforce' })
      .getByRole('button', { name: 'Connect' })
      .click()
    await page.getByLabel(/Client ID/).fill(salesforce.clientId)
    await page.getByLabel(/Login URL/).fill(salesforce.url)
    await page.getByRole('button', { name: 'Sign in with Salesforce' }).click()
    await page.getByRole('tab', { name: 'Overview' }).waitFor({ timeout: 30_000 })
    const connections = callData(await call('connections:list', { tenantId })) as Array<{
      connectorType: string
      status: string
    }>
    expect(connections).toMatchObject([{ connectorType: 'salesforce', status: 'connected' }])
    await page.close()
  })

  it('grants Microsoft 365 admin consent through the browser: terms first, a waiting state with Cancel, then connected with its token expiry', async () => {
    const tenantId = await newTenant('Consent tenant')
    const page = await openApp(tenantId)
    await page
      .getByRole('region', { name: 'Microsoft 365' })
      .getByRole('button', { name: 'Connect' })
      .click()
    await page.getByRole('heading', { name: 'Connect Microsoft 365' }).waitFor()
    await page.getByRole('button', { name: 'Accept the terms' }).click()
    await page.getByText('Accepted', { exact: true }).waitFor()
    await page.getByLabel(/Client ID/).fill(microsoft.clientId)
    await page.getByLabel(/Client secret/).fill(microsoft.clientSecret)
    await page.getByLabel(/Authority/).fill(microsoft.url)
    await page.getByLabel(/Graph base URL/).fill(`${microsoft.url}/v1.0`)

    // First attempt: the admin walks away; Cancel ends the wait and stores nothing.
    const firstOpened = new Promise<string>((resolve) => (holdBrowser = resolve))
    await page.getByRole('button', { name: 'Grant admin consent' }).click()
    const consentUrl = new URL(await firstOpened)
    expect(consentUrl.origin + consentUrl.pathname).toBe(
      `${microsoft.url}/organizations/v2.0/adminconsent`,
    )
    const waiting = page.getByRole('status').filter({ hasText: 'Waiting for your browser' })
    await waiting.waitFor()
    expect(await waiting.textContent()).toContain("Microsoft 365's sign-in page")
    await screenshot(page, 'connect-o365-waiting')
    await page.getByRole('button', { name: 'Cancel sign-in' }).click()
    await page.getByRole('alert').filter({ hasText: 'Not connected' }).waitFor()
    await waiting.waitFor({ state: 'hidden' })
    expect(callData(await call('connections:list', { tenantId }))).toEqual([])

    // Second attempt: the admin grants consent in the browser.
    const secondOpened = new Promise<string>((resolve) => (holdBrowser = resolve))
    await page.getByRole('button', { name: 'Grant admin consent' }).click()
    const url = await secondOpened
    holdBrowser = null
    await waiting.waitFor()
    const answer = await browse(url)
    expect(answer.body).toContain('You can close this window')
    await page.getByRole('tab', { name: 'Overview' }).waitFor({ timeout: 30_000 })
    const [connection] = callData(await call('connections:list', { tenantId })) as Array<{
      connectorType: string
      status: string
      config: Record<string, unknown>
    }>
    expect(connection).toMatchObject({
      connectorType: 'o365',
      status: 'connected',
      config: { tenantId: microsoft.tenantId, clientId: microsoft.clientId },
    })
    expect(JSON.stringify(connection)).not.toContain(microsoft.clientSecret)

    // Reconnect keeps the configuration and never shows the saved secret.
    await page.getByRole('button', { name: 'Connectors' }).first().click()
    await page
      .getByRole('region', { name: 'Microsoft 365' })
      .getByRole('button', { name: 'Reconnect' })
      .click()
    expect(await page.getByLabel(/Client ID/).inputValue()).toBe(microsoft.clientId)
    expect(await page.getByLabel(/Client secret/).inputValue()).toBe('')
    expect(await page.content()).not.toContain(microsoft.clientSecret)

    // Diagnostics says when the app's current token runs out (Graph's tokens last an hour).
    const checkedAt = Date.now()
    await page.getByRole('button', { name: 'Diagnostics' }).click()
    const row = page.getByTestId('diag-connections-table').locator('tr', { hasText: 'o365' })
    await row.getByText(/Current token expires in/).waitFor({ timeout: 30_000 })
    expect(await row.textContent()).toMatch(/Current token expires in (1 h|5\d min)/)
    const diagnostics = callData(await call('diagnostics:run', { tenantId })) as {
      connections: Array<{ connectorType: string; tokenExpiresAt: string | null }>
    }
    const expiry = new Date(diagnostics.connections[0]!.tokenExpiresAt!).getTime()
    expect(expiry).toBeGreaterThan(checkedAt + 50 * 60_000)
    expect(expiry).toBeLessThan(Date.now() + 61 * 60_000)
    await page.close()
  })

  it('syncs with live progress to complete, and the timeline and chart gain the run', async () => {
    const tenantId = await newTenant('Sync tenant')
    await connectSalesforce(tenantId)
    const page = await openApp(tenantId)
    await openConnector(page, 'Salesforce')
    await page.getByRole('tab', { name: 'Timeline' }).click()
    await page.getByText('No sync in this period yet.').waitFor()
    await page.getByRole('tab', { name: 'Overview' }).click()

    await page.getByRole('button', { name: 'Sync now' }).click()
    const seen: number[] = []
    const records = page.getByTestId('live-records')
    await records.waitFor()
    for (let i = 0; i < 200; i++) {
      // Asked before the count, so the count read after 'Complete' is the final one.
      const complete = (await page.getByTestId('live-progress').textContent())?.includes('Complete')
      seen.push(Number((await records.textContent())?.replace(/,/g, '')))
      if (complete) break
      await page.waitForTimeout(50)
    }
    expect(await page.getByTestId('live-progress').textContent()).toContain('Complete')
    // 12 accounts, 38 people, 30 activities: the count only rises, and ends at all of them.
    expect(seen.at(-1)).toBe(80)
    for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThanOrEqual(seen[i - 1]!)
    expect(await page.getByTestId('live-stream-contacts').textContent()).toContain('30')
    // The connection's own figures follow the sync without leaving the page: the last sync and
    // every stream's status and last read.
    await page.getByText('Last sync less than a minute ago.', { exact: false }).waitFor()
    const streamsCard = page.getByRole('region', { name: 'Streams' })
    for (const stream of ['Accounts', 'Contacts', 'Leads', 'Opportunities', 'Tasks', 'Events']) {
      const row = streamsCard.getByRole('row').filter({ hasText: stream })
      await expect.poll(() => row.textContent()).toContain('less than a minute ago')
      expect(await row.textContent()).not.toContain('never')
    }
    await screenshot(page, 'connector-synced')
    // A stream's report can reach the app after the sync's summary (its last pages commit late):
    // the summary has the last word, so an older count does not replace it.
    const late = { pages: 1, created: 24, updated: 0, deleted: 0, errors: 0 }
    app.emit('sync:progress', {
      tenantId,
      connectorType: 'salesforce',
      stream: 'contacts',
      phase: 'reading',
      ...late,
      totals: { ...late, pages: 5, created: 74 },
      elapsedMs: 1_000,
    })
    // Evaluations run in the page in the order sent: once this one is back, the report was handled.
    await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(resolve)))
    expect(await page.getByTestId('live-records').textContent()).toBe('80')
    expect(await page.getByTestId('live-progress').textContent()).toContain('Complete')
    expect(await page.getByTestId('live-stream-contacts').textContent()).toContain('30')

    await page.getByRole('tab', { name: 'Timeline' }).click()
    await page.getByTestId('runs-chart').waitFor()
    expect(Number(await page.getByTestId('runs-chart').getAttribute('data-runs'))).toBe(6)
    // The scales' tops, whole: the most records in one run (the contacts) and the longest run.
    expect(await page.getByTestId('chart-max-records').textContent()).toBe('30 records')
    expect(await page.getByTestId('chart-max-duration').textContent()).toMatch(/^\d+ ms$|\d s$/)
    expect(await page.locator('[data-testid="timeline"] tr[data-type="run"]').count()).toBe(6)
    await page.close()
  })

  it('shows a sync it did not start (a scheduled one) on the open pages within the refresh period', async () => {
    const tenantId = await newTenant('Scheduled tenant')
    // Objects of 10 records or more are read by Bulk query jobs, which the fake can fail.
    callData(
      await call('connections:connect', {
        tenantId,
        connectorType: 'salesforce',
        config: { ...salesforce.connectConfig(), bulkPollIntervalMs: 5, bulkMinRecords: 10 },
      }),
    )
    const page = await openApp(tenantId, 'light', { clock: true })
    await openConnector(page, 'Salesforce')
    const contacts = page
      .getByRole('region', { name: 'Streams' })
      .getByRole('row')
      .filter({ hasText: 'Contacts' })
    expect(await contacts.textContent()).toContain('never')
    // Syncs the app knows nothing of, as the agent's schedule runs them: in the first, the
    // Contacts job fails in Salesforce.
    const syncInBackground = () => call('sync:run', { tenantId, connectorType: 'salesforce' })
    salesforce.failNextBulkJob('Contact')
    const first = callData(await syncInBackground()) as { status: string; error: string | null }
    expect(first.status).toBe('failed')
    expect(first.error).toMatch(
      /^Contacts: Salesforce's Bulk query job \w+ for Contact ended Failed/,
    )
    expect(await contacts.textContent()).toContain('never')
    // The open connection page reads the connection again within its refresh period.
    await page.clock.fastForward(30_000)
    await expect.poll(() => contacts.textContent()).toContain('failed')
    expect(await contacts.textContent()).toContain('ended Failed')

    // So does the list: the next sync reads Contacts, and the card turns from failed to succeeded.
    await page.getByRole('button', { name: 'Connectors' }).first().click()
    const card = page.getByRole('region', { name: 'Salesforce' })
    await expect.poll(() => card.textContent()).toContain('failed')
    expect(callData(await syncInBackground())).toMatchObject({ status: 'succeeded' })
    expect(await card.textContent()).toContain('failed')
    await page.clock.fastForward(30_000)
    await expect.poll(() => card.textContent()).toContain('succeeded')
    expect(await card.textContent()).not.toContain('failed')
    await page.close()
  })

  it('sets a custom schedule with its next runs, pauses and resumes it, re-reads one stream after confirming, and filters the timeline', async () => {
    const tenantId = await newTenant('Schedule tenant')
    const target = { tenantId, connectorType: 'salesforce' }
    await connectSalesforce(tenantId)
    callData(await call('sync:run', target))
    const page = await openApp(tenantId)
    await openConnector(page, 'Salesforce')

    // A cron that cannot run says why, and cannot be saved.
    await page.getByRole('button', { name: 'Custom' }).click()
    const cron = page.getByLabel('Cron expression (UTC)')
    await cron.fill('61 * * * *')
    expect(await cron.getAttribute('aria-invalid')).toBe('true')
    expect(await page.locator('#cron-help').textContent()).toMatch(/minute/i)
    expect(await page.getByRole('button', { name: 'Save schedule' }).isDisabled()).toBe(true)

    // Mondays at 02:30 UTC: the next three runs shown are the ones Temporal then reports.
    await cron.fill('30 2 * * 1')
    const shown = (await page.getByTestId('next-runs').getAttribute('data-runs'))!.split(' ')
    expect(shown).toHaveLength(3)
    for (const run of shown) {
      const at = new Date(run)
      expect([at.getUTCDay(), at.getUTCHours(), at.getUTCMinutes()]).toEqual([1, 2, 30])
      expect(at.getTime()).toBeGreaterThan(Date.now())
    }
    await page.getByRole('button', { name: 'Save schedule' }).click()
    await page.getByText('Schedule saved.').waitFor()
    const saved = callData(await call('schedules:get', target)) as {
      cron: string
      paused: boolean
      nextRunAt: string
    }
    expect(saved).toMatchObject({ cron: '30 2 * * 1', paused: false })
    expect(new Date(saved.nextRunAt).toISOString()).toBe(shown[0])

    await page.getByRole('button', { name: 'Pause', exact: true }).click()
    await page.getByText('Schedule paused.').waitFor()
    await page.getByRole('button', { name: 'Resume', exact: true }).waitFor()
    expect(callData(await call('schedules:get', target))).toMatchObject({ paused: true })
    await page.getByRole('button', { name: 'Resume', exact: true }).click()
    await page.getByText('Schedule resumed.').waitFor()
    await page.getByRole('button', { name: 'Pause', exact: true }).waitFor()
    expect(callData(await call('schedules:get', target))).toMatchObject({ paused: false })

    // A full re-read of one stream asks first; Cancel starts nothing.
    const runsOf = async () =>
      callData(await call('runs:list', { ...target, limit: 100 })) as Array<{
        stream: string
        mode: string
        status: string
        created: number
        updated: number
      }>
    const before = await runsOf()
    await page.getByLabel('Read everything again:').selectOption('leads')
    await page.getByRole('button', { name: 'Full re-read…' }).click()
    const dialog = page.getByRole('dialog', { name: 'Read Leads again?' })
    await dialog.waitFor()
    await dialog.getByRole('button', { name: 'Cancel' }).click()
    await dialog.waitFor({ state: 'hidden' })
    expect(await runsOf()).toHaveLength(before.length)
    await page.getByRole('button', { name: 'Full re-read…' }).click()
    await dialog.getByRole('button', { name: 'Start full re-read' }).click()
    await page.waitForFunction(
      () =>
        document.querySelector('[data-testid="live-progress"]')?.textContent?.includes('Complete'),
      undefined,
      { timeout: 30_000 },
    )
    const after = await runsOf()
    expect(after).toHaveLength(before.length + 1)
    // Only Leads were read again, and none of them changed, so nothing was rewritten.
    expect(after[0]).toMatchObject({
      stream: 'leads',
      mode: 'full',
      status: 'succeeded',
      created: 0,
      updated: 0,
    })

    // The timeline by type and date.
    await page.getByRole('tab', { name: 'Timeline' }).click()
    const rows = (type: string) => page.locator(`[data-testid="timeline"] tr[data-type="${type}"]`)
    await rows('run').first().waitFor()
    expect(await rows('run').count()).toBe(after.length)
    const scheduleChanges = callData(
      await call('timeline:list', { ...target, types: ['schedule'], limit: 200 }),
    ) as unknown[]
    expect(scheduleChanges.length).toBeGreaterThanOrEqual(3)
    expect(await rows('schedule').count()).toBe(scheduleChanges.length)
    await page.getByLabel('Syncs', { exact: true }).uncheck()
    // Once the filtered timeline has loaded: no runs, the schedule changes still there.
    await page.waitForFunction(
      (expected) =>
        document.querySelectorAll('[data-testid="timeline"] tr[data-type="schedule"]').length ===
          expected &&
        document.querySelectorAll('[data-testid="timeline"] tr[data-type="run"]').length === 0,
      scheduleChanges.length,
    )
    expect(await rows('run').count()).toBe(0)
    await screenshot(page, 'connector-timeline-filtered')
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10)
    await page.getByLabel('From', { exact: true }).fill(tomorrow)
    await page.getByText('Nothing here yet').waitFor()
    expect(await page.locator('[data-testid="timeline"]').count()).toBe(0)
    await page.close()
  })

  it('edits a mapping with a live preview, saves it, and the audit log shows it', async () => {
    const tenantId = await newTenant('Mapping tenant')
    await connectSalesforce(tenantId)
    const page = await openApp(tenantId)
    await openConnector(page, 'Salesforce')
    await page.getByRole('button', { name: 'Edit mappings of Contacts' }).click()
    await page.getByTestId('preview-canonical').first().waitFor({ timeout: 30_000 })
    const before = await page.getByTestId('preview-canonical').first().textContent()
    const lastName = before?.match(/"lastName": "([^"]+)"/)?.[1]
    expect(lastName).toBeTruthy()
    expect(lastName).not.toBe(lastName!.toUpperCase())

    await page.getByLabel('Transform for lastName').selectOption('uppercase')
    await page.waitForFunction(
      (upper) =>
        document
          .querySelector('[data-testid="preview-canonical"]')
          ?.textContent?.includes(`"lastName": "${upper}"`),
      lastName!.toUpperCase(),
    )
    expect(await page.getByTestId('mapping-diff').textContent()).toContain('uppercase')
    await screenshot(page, 'mappings')
    await page.getByRole('button', { name: /^Save 1 change/ }).click()
    await page.getByRole('button', { name: 'Saved' }).waitFor()

    await page.getByRole('button', { name: 'Audit log' }).click()
    await page.getByTestId('audit').waitFor()
    const row = page.locator('[data-testid="audit"] tr[data-action="mapping.update"]')
    expect(await row.count()).toBe(1)
    expect(await row.textContent()).toContain('uppercase')
    await page.close()
  })

  it('shows a rejected record with its reason, and stores it after a mapping fix and a retry', async () => {
    const tenantId = await newTenant('Reject tenant')
    await connectSalesforce(tenantId)
    // Accounts need a name: map it from a field no account has.
    callData(
      await call('mappings:set', {
        tenantId,
        connectorType: 'salesforce',
        entityType: 'account',
        stream: 'accounts',
        mappings: [{ sourceField: 'Unused_Field__c', targetField: 'name', transform: 'none' }],
      }),
    )
    callData(await call('sync:run', { tenantId, connectorType: 'salesforce', stream: 'accounts' }))
    const page = await openApp(tenantId)
    await openConnector(page, 'Salesforce')
    await page.getByRole('tab', { name: 'Rejected records' }).click()
    await page.getByTestId('rejected').waitFor()
    expect(await page.locator('[data-testid="rejected"] tbody tr').count()).toBe(12)
    expect(await page.getByTestId('rejected').textContent()).toContain('name')
    await screenshot(page, 'rejected')

    callData(
      await call('mappings:reset', {
        tenantId,
        connectorType: 'salesforce',
        entityType: 'account',
        stream: 'accounts',
      }),
    )
    await page.getByRole('button', { name: 'Retry all' }).click()
    await page.getByTestId('retry-result').waitFor()
    expect(await page.getByTestId('retry-result').textContent()).toContain('12 stored')
    await page.getByText('No rejected records').waitFor()
    const [connection] = callData(await call('connections:list', { tenantId })) as Array<{
      records: { account: number }
    }>
    expect(connection!.records.account).toBe(12)
    await page.close()
  })

  it('previews the Salesforce writeback as a dry run before it is turned on', async () => {
    const tenantId = await newTenant('Writeback tenant')
    await connectSalesforce(tenantId)
    const page = await openApp(tenantId)
    await openConnector(page, 'Salesforce')
    await page.getByRole('tab', { name: 'Writeback' }).click()
    const turnOn = page.getByRole('button', { name: 'Turn on…' }).first()
    await turnOn.waitFor()
    expect(await turnOn.isDisabled()).toBe(true)
    await page.getByRole('button', { name: 'Run dry run' }).click()
    await page.getByRole('button', { name: 'Run again' }).waitFor()
    expect(await turnOn.isDisabled()).toBe(false)
    await screenshot(page, 'writeback')
    await page.close()
  })

  it('shows diagnostics all green, the database red while it is down, and copies a report without secrets', async () => {
    const tenantId = await newTenant('Diagnostics tenant')
    await connectSalesforce(tenantId)
    const page = await openApp(tenantId)
    await page.getByRole('button', { name: 'Diagnostics' }).click()
    for (const id of ['agent', 'database', 'temporal', 'key']) {
      await page.getByTestId(`diag-${id}`).waitFor()
      expect(await page.getByTestId(`diag-${id}`).getAttribute('data-tone'), id).toBe('ok')
    }
    await screenshot(page, 'diagnostics')

    await page.getByRole('button', { name: 'Copy report' }).click()
    await page.getByText('Report copied').waitFor()
    const report = copied.at(-1)!
    expect(report).toContain('"reachable": true')
    for (const secret of [salesforce.refreshToken, salesforce.accessToken, delivr.apiKey]) {
      expect(report).not.toContain(secret)
    }

    await proxy.cut()
    try {
      await page.getByRole('button', { name: 'Run all checks' }).click()
      await page.waitForFunction(
        () =>
          document.querySelector('[data-testid="diag-database"]')?.getAttribute('data-tone') ===
          'bad',
        undefined,
        { timeout: 20_000 },
      )
      expect(await page.getByTestId('database-error').textContent()).toBeTruthy()
      await screenshot(page, 'diagnostics-database-down')
    } finally {
      await proxy.restore()
    }
    await page.getByRole('button', { name: 'Run all checks' }).click()
    await page.waitForFunction(
      () =>
        document.querySelector('[data-testid="diag-database"]')?.getAttribute('data-tone') === 'ok',
      undefined,
      { timeout: 20_000 },
    )
    await page.close()
  })

  it('never shows another tenant rows, even for a frame, when switching tenants', async () => {
    const first = await newTenant('Tenant Alpha')
    const second = await newTenant('Tenant Beta')
    await connectSalesforce(first)
    const page = await openApp(first)
    await page.getByTestId('status-salesforce').waitFor()
    // Record every text the page ever shows about Salesforce's state, frame by frame.
    await page.evaluate(() => {
      const seen: string[] = []
      ;(window as unknown as { __seen: string[] }).__seen = seen
      new MutationObserver(() => {
        const el = document.querySelector('[data-testid="status-salesforce"]')
        seen.push(
          `${document.querySelector('#tenant') instanceof HTMLSelectElement ? (document.querySelector('#tenant') as HTMLSelectElement).value : ''}:${el?.textContent ?? ''}`,
        )
      }).observe(document.body, { subtree: true, childList: true, characterData: true })
    })
    expect(await page.getByTestId('status-salesforce').textContent()).toContain('Connected')
    await page.getByLabel('Tenant', { exact: true }).selectOption(second)
    await page.getByText('Add your Delivr.ai API key to start syncing.').waitFor()
    await page.waitForFunction(() =>
      document
        .querySelector('[data-testid="status-salesforce"]')
        ?.textContent?.includes('Not connected'),
    )
    const seen = await page.evaluate(() => (window as unknown as { __seen: string[] }).__seen)
    expect(
      seen.filter(
        (s) =>
          s.startsWith(`${second}:`) && s.includes('Connected') && !s.includes('Not connected'),
      ),
    ).toEqual([])
    await page.close()
  })

  it('passes an accessibility scan on every screen and saves screenshots, light and dark', async () => {
    const tenantId = await newTenant('Screens tenant')
    await connectSalesforce(tenantId)
    callData(await call('sync:run', { tenantId, connectorType: 'salesforce' }))
    const problems: string[] = []
    for (const scheme of ['light', 'dark'] as const) {
      const page = await openApp(tenantId, scheme)
      const visit = async (name: string, ready: () => Promise<unknown>): Promise<void> => {
        await ready()
        await page.waitForFunction(
          () => document.querySelectorAll('[aria-busy="true"]').length === 0,
          undefined,
          {
            timeout: 30_000,
          },
        )
        await screenshot(page, name)
        for (const v of await accessibilityViolations(page))
          problems.push(`${name} (${scheme}): ${v}`)
      }
      await visit('connectors', () => page.getByTestId('status-salesforce').waitFor())
      await page
        .getByRole('region', { name: 'Fathom' })
        .getByRole('button', { name: 'Connect' })
        .click()
      await visit('connect', () => page.getByRole('heading', { name: 'Connect Fathom' }).waitFor())
      await page.getByRole('button', { name: 'Connectors' }).first().click()
      await openConnector(page, 'Salesforce')
      await visit('connector-overview', () =>
        page.getByRole('heading', { name: 'Schedule' }).waitFor(),
      )
      await page.getByRole('tab', { name: 'Timeline' }).click()
      await visit('connector-timeline', () => page.getByTestId('runs-chart').waitFor())
      await page.getByRole('tab', { name: 'Rejected records' }).click()
      await visit('connector-rejected', () => page.getByText('No rejected records').waitFor())
      await page.getByRole('tab', { name: 'Writeback' }).click()
      await visit('connector-writeback', () =>
        page.getByRole('button', { name: 'Run dry run' }).waitFor(),
      )
      await page.getByRole('button', { name: 'Field mappings' }).click()
      await visit('field-mappings', () =>
        page.getByTestId('preview-canonical').first().waitFor({ timeout: 30_000 }),
      )
      await page.getByRole('button', { name: 'Diagnostics' }).click()
      await visit('diagnostics', () => page.getByTestId('diag-database').waitFor())
      await page.getByRole('button', { name: 'Audit log' }).click()
      await visit('audit-log', () => page.getByTestId('audit').waitFor())
      await page.close()
    }
    expect(problems).toEqual([])
    expect(app.pageErrors).toEqual([])
  }, 300_000)
})
