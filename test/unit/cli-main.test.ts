import { describe, expect, it } from 'vitest'
import { main } from '../../src-agent/cli/index.js'

// Importing the CLI must not run or exit anything: only bin/gtm-agent.mjs exits the process.
describe('cli main', () => {
  it('returns the exit code instead of exiting: 0 success, 2 usage error, 1 failure', async () => {
    expect(await main(['node', 'gtm-agent', '--version'], {})).toBe(0)
    expect(await main(['node', 'gtm-agent', 'no-such-command'], {})).toBe(2)
    // No CONNECTOR_ENCRYPTION_KEY: the command fails before it touches anything.
    const failed = await main(
      ['node', 'gtm-agent', 'connect', 'salesforce', '--tenant', 't', '--config', 'x.json'],
      {},
    )
    expect(failed).toBe(1)
  })
})
