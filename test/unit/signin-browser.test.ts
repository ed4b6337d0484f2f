import { describe, expect, it } from 'vitest'
import { browserCommand } from '../../src-agent/signin/browser.js'

const url = 'https://login.example/authorize?x=1&y=2'

describe('which browser a sign-in opens', () => {
  it('uses BROWSER when set: the first of a ":" list, the URL at %s or last; empty or "none" opens nothing', () => {
    expect(browserCommand(url, { BROWSER: 'firefox' }, 'linux')).toEqual({
      command: 'firefox',
      args: [url],
    })
    expect(browserCommand(url, { BROWSER: 'chromium --new-window %s:firefox' }, 'linux')).toEqual({
      command: 'chromium',
      args: ['--new-window', url],
    })
    // BROWSER wins even without a display and in CI: whoever set it knows.
    expect(browserCommand(url, { BROWSER: 'w3m', CI: 'true' }, 'linux')?.command).toBe('w3m')
    expect(browserCommand(url, { BROWSER: '', DISPLAY: ':0' }, 'linux')).toBeUndefined()
    expect(browserCommand(url, { BROWSER: 'none', DISPLAY: ':0' }, 'darwin')).toBeUndefined()
  })

  it("uses the platform's opener, but not in CI or on a Linux box without a display", () => {
    expect(browserCommand(url, { DISPLAY: ':0' }, 'linux')).toEqual({
      command: 'xdg-open',
      args: [url],
    })
    expect(browserCommand(url, { WAYLAND_DISPLAY: 'wayland-0' }, 'linux')?.command).toBe('xdg-open')
    expect(browserCommand(url, {}, 'linux')).toBeUndefined()
    expect(browserCommand(url, { DISPLAY: ':0', CI: 'true' }, 'linux')).toBeUndefined()
    expect(browserCommand(url, {}, 'darwin')).toEqual({ command: 'open', args: [url] })
    expect(browserCommand(url, {}, 'win32')).toEqual({
      command: 'rundll32',
      args: ['url.dll,FileProtocolHandler', url],
    })
  })
})
