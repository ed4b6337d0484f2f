/**
 * `gtm-agent connect <type> --browser`: the sign-in half. It reads what sign-in needs from the
 * config file, prints the URL (and opens a browser where there is one), waits on the loopback
 * for the callback and returns the connector's config, tokens included, for the usual connect.
 */
import { InvalidArgumentError } from 'commander'
import { z } from 'zod'
import { ConfigError } from '../../shared/errors.js'
import type { AnyConnector } from '../connectors/interface.js'
import type { Logger } from '../logging/logger.js'
import { whileInterruptible } from '../shutdown.js'
import { openBrowser, type BrowserEnv } from '../signin/browser.js'
import { parseSignInConfig } from '../signin/config.js'
import {
  DEFAULT_REDIRECT_PATH,
  DEFAULT_REDIRECT_PORT,
  DEFAULT_SIGN_IN_TIMEOUT_MS,
  describeMs,
  signInThroughLoopback,
} from '../signin/loopback.js'

export interface BrowserSignInInput {
  connector: AnyConnector
  /** The parsed config file: the connector's sign-in settings, plus `redirectPort`. */
  configJson: unknown
  /** `--redirect-port`: wins over the file's `redirectPort`. */
  redirectPort?: number | undefined
  timeoutMs?: number
  env: BrowserEnv
  log: Logger
  /** Where the URL and what is happening go (stderr): never stdout, which carries results. */
  write: (line: string) => void
}

/** Config keys of the loopback listener, the same for every connector. */
export const loopbackConfigSchema = z.object({
  /** The callback's port on 127.0.0.1: the one registered with the vendor (0 = any free one). */
  redirectPort: z.number().int().min(0).max(65_535).default(DEFAULT_REDIRECT_PORT),
})

/**
 * Runs the browser sign-in of `connector` and returns its config for `connect`. A connector
 * without sign-in, or a config sign-in cannot use, is a ConfigError naming what is wrong. The
 * first Ctrl-C cancels the wait.
 */
export async function signInWithBrowser(input: BrowserSignInInput): Promise<unknown> {
  const { connector } = input
  const signIn = connector.signIn
  if (!signIn) {
    throw new ConfigError(
      'config_invalid',
      `${connector.name} (${connector.id}) has no browser sign-in: connect it without --browser, with a config file that holds its credentials.`,
    )
  }
  const config = parseSignInConfig(connector, signIn.configSchema, input.configJson)
  const listener = parseSignInConfig(connector, loopbackConfigSchema, input.configJson)
  const port = input.redirectPort ?? listener.redirectPort
  const timeoutMs = input.timeoutMs ?? DEFAULT_SIGN_IN_TIMEOUT_MS
  return whileInterruptible(({ stop, abort }) =>
    signInThroughLoopback(signIn, config, {
      vendor: connector.name,
      port,
      path: DEFAULT_REDIRECT_PATH,
      timeoutMs,
      signal: stop,
      open: (url) => {
        input.write(`Open this URL to sign in: ${url}`)
        const opened = openBrowser(url, input.env)
        input.write(
          `${opened ? 'Opened it in your browser. ' : ''}Waiting up to ${describeMs(timeoutMs)} for the ${connector.name} sign-in (Ctrl-C cancels)…`,
        )
      },
      complete: { stop, signal: abort, log: input.log },
    }),
  )
}

/** `--redirect-port`: a port number, 0 for any free one. */
export function redirectPortOption(value: string): number {
  const n = Number(value)
  if (!/^\d+$/.test(value) || n > 65_535)
    throw new InvalidArgumentError('expected a port number (0–65535).')
  return n
}
