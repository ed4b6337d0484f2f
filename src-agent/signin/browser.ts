/** Opening a URL in the user's browser, when this machine has one; never fatal. */
import { spawn } from 'node:child_process'

export type BrowserEnv = Record<string, string | undefined>

/**
 * The command that would open `url` here, or undefined when there is no browser to open:
 * `BROWSER` when set (empty or "none" means none), nothing in CI or on a Linux box without
 * DISPLAY or WAYLAND_DISPLAY (a server over SSH), else the platform's opener.
 */
export function browserCommand(
  url: string,
  env: BrowserEnv,
  platform: NodeJS.Platform = process.platform,
): { command: string; args: string[] } | undefined {
  const chosen = env.BROWSER
  if (chosen !== undefined) {
    // Like other tools that read BROWSER: a ":"-separated list (the first is used), "%s" marks
    // where the URL goes, otherwise it comes last.
    const first = chosen.split(':')[0]?.trim() ?? ''
    if (first === '' || first === 'none') return undefined
    const [command, ...rest] = first.split(/\s+/)
    if (!command) return undefined
    const args = rest.some((arg) => arg.includes('%s'))
      ? rest.map((arg) => arg.replaceAll('%s', url))
      : [...rest, url]
    return { command, args }
  }
  if (env.CI) return undefined
  if (platform === 'darwin') return { command: 'open', args: [url] }
  // Not `cmd /c start`: cmd would read the URL's "&" as a command separator.
  if (platform === 'win32') {
    return { command: 'rundll32', args: ['url.dll,FileProtocolHandler', url] }
  }
  if (!env.DISPLAY && !env.WAYLAND_DISPLAY) return undefined
  return { command: 'xdg-open', args: [url] }
}

/**
 * Starts the browser on `url`, detached, without waiting for it; returns whether one was
 * started. A missing or failing opener is ignored: the caller has printed the URL anyway.
 */
export function openBrowser(url: string, env: BrowserEnv): boolean {
  const opener = browserCommand(url, env)
  if (!opener) return false
  try {
    const child = spawn(opener.command, opener.args, {
      detached: true,
      stdio: 'ignore',
      windowsHide: true,
    })
    child.on('error', () => undefined)
    child.unref()
    return true
  } catch {
    return false
  }
}
