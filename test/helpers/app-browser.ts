/// <reference lib="dom" />
// Functions passed to page.evaluate run in the page, so this file sees DOM types.
/**
 * The desktop app's screens in Debian's Chromium, wired as Electron wires them but without the
 * Electron binary: the built renderer (out/renderer) is served on loopback, and `window.gtm` is
 * the preload's own api (src-main/preload/api.ts, bundled for the page) over main's real handlers
 * (appHandlers), which talk to the real agent process. Events from the agent reach the page the
 * way main's sender would deliver them.
 */
import { existsSync, readFileSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import { build } from 'esbuild'
import { chromium, type Browser, type BrowserContext, type Page } from '@playwright/test'
import type { CallResult } from '../../shared/contract.js'
import type { IpcChannel } from '../../shared/ipc.js'
import { repoRoot } from './cli.js'

export const rendererDir = path.join(repoRoot, 'out/renderer')
export const screenshotDir = path.join(repoRoot, 'test-results/screenshots')
const AXE_PATH = '/__test/axe.min.js'
const axeFile = path.join(repoRoot, 'node_modules/axe-core/axe.min.js')

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

const types: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
}

/** Serves the built renderer from loopback, as the packaged app loads it from disk. */
async function serveRenderer(): Promise<{ url: string; close(): Promise<void> }> {
  if (!existsSync(path.join(rendererDir, 'index.html'))) {
    throw new Error('out/renderer is missing: run "npx electron-vite build" (npm test builds it).')
  }
  const server = http.createServer((req, res) => {
    const pathname = new URL(req.url ?? '/', 'http://127.0.0.1').pathname
    // axe comes from the same origin, so the app's Content-Security-Policy lets it run.
    const file =
      pathname === AXE_PATH
        ? axeFile
        : path.join(rendererDir, pathname === '/' ? 'index.html' : pathname)
    if ((file !== axeFile && !file.startsWith(rendererDir)) || !existsSync(file)) {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'content-type': types[path.extname(file)] ?? 'application/octet-stream' })
    res.end(readFileSync(file))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}/`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  }
}

/** The preload's api module as one script the page can run before the app's own. */
async function preloadBundle(): Promise<string> {
  const result = await build({
    entryPoints: [path.join(repoRoot, 'src-main/preload/api.ts')],
    bundle: true,
    write: false,
    format: 'iife',
    globalName: '__gtmPreload',
    platform: 'browser',
    target: 'chrome120',
    logLevel: 'silent',
  })
  return result.outputFiles[0]!.text
}

export interface AppBrowser {
  browser: Browser
  /** A fresh window of the app: its own storage, light or dark. */
  open(options?: { colorScheme?: 'light' | 'dark' }): Promise<Page>
  /** Delivers one of main's events to every open window. */
  emit(event: string, data: unknown): void
  /** Console errors and page errors seen in any window (a CSP violation among them). */
  pageErrors: string[]
  close(): Promise<void>
}

export async function launchAppBrowser(
  call: (channel: IpcChannel, input?: unknown) => Promise<CallResult<unknown>>,
): Promise<AppBrowser> {
  const [renderer, bundle] = await Promise.all([serveRenderer(), preloadBundle()])
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
  })
  const contexts = new Set<BrowserContext>()
  const pageErrors: string[] = []
  const init = `${bundle}
    ;(() => {
      const listeners = new Set()
      window.__gtmEmit = (event, data) => { for (const l of listeners) l({ event, data }) }
      window.gtm = __gtmPreload.createGtmApi(
        (channel, input) => window.__gtmInvoke(channel, input === undefined ? null : input),
        (listener) => { listeners.add(listener); return () => listeners.delete(listener) },
      )
    })()`
  await mkdir(screenshotDir, { recursive: true })
  return {
    browser,
    pageErrors,
    open: async (options = {}) => {
      const context = await browser.newContext({
        colorScheme: options.colorScheme ?? 'light',
        viewport: { width: 1280, height: 860 },
      })
      contexts.add(context)
      // Bindings answer with main's CallResult; input null stands for "no input" (void channels).
      await context.exposeBinding('__gtmInvoke', (_source, channel: IpcChannel, input: unknown) =>
        call(channel, input === null ? undefined : input),
      )
      await context.addInitScript({ content: init })
      const page = await context.newPage()
      page.on('pageerror', (err) => pageErrors.push(`pageerror: ${err.message}`))
      page.on('console', (msg) => {
        if (msg.type() === 'error') pageErrors.push(`console: ${msg.text()}`)
      })
      await page.goto(renderer.url)
      return page
    },
    emit: (event, data) => {
      for (const context of contexts) {
        for (const page of context.pages()) {
          page
            .evaluate(
              ([e, d]) =>
                (window as unknown as { __gtmEmit: (e: unknown, d: unknown) => void }).__gtmEmit(
                  e,
                  d,
                ),
              [event, data] as const,
            )
            .catch(() => undefined)
        }
      }
    },
    close: async () => {
      await browser.close()
      await renderer.close()
    },
  }
}

/** Saves a screenshot as test-results/screenshots/<name>-<scheme>.png. */
export async function screenshot(page: Page, name: string): Promise<void> {
  const scheme = await page.evaluate(() =>
    window.matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light',
  )
  await page.screenshot({ path: path.join(screenshotDir, `${name}-${scheme}.png`), fullPage: true })
}

/** Runs axe in the page and returns the serious and critical violations, described. */
export async function accessibilityViolations(page: Page): Promise<string[]> {
  await page.addScriptTag({ url: AXE_PATH })
  const results = await page.evaluate(async () => {
    const axe = (
      window as unknown as {
        axe: {
          run: (
            ctx: Document,
            opts: unknown,
          ) => Promise<{
            violations: Array<{
              id: string
              impact: string | null
              help: string
              nodes: Array<{ target: unknown[] }>
            }>
          }>
        }
      }
    ).axe
    return axe.run(document, { resultTypes: ['violations'] })
  })
  return results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map(
      (v) =>
        `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => JSON.stringify(n.target)).join(', ')}`,
    )
}
