import { ESLint } from 'eslint'
import { describe, expect, it } from 'vitest'
import { repoRoot } from '../helpers/cli.js'

/**
 * The direction between src-agent's folders is the lint config's: an import from a higher layer
 * (or of Electron) fails `npm run lint`, so a cycle cannot come back unnoticed.
 */
describe('src-agent layers', () => {
  const eslint = new ESLint({ cwd: repoRoot })
  /** The restricted-import messages for `code` as if it stood in `file`. */
  const restricted = async (file: string, code: string) => {
    const [result] = await eslint.lintText(code, { filePath: `${repoRoot}/${file}` })
    return (result?.messages ?? [])
      .filter((m) => m.ruleId === '@typescript-eslint/no-restricted-imports')
      .map((m) => m.message)
  }

  it.each([
    ['src-agent/connectors/streams.ts', '../pipeline/run-sync.js'],
    ['src-agent/signin/loopback.ts', '../pipeline/run-sync.js'],
    ['src-agent/pipeline/run-sync.ts', '../services/mappings.js'],
    ['src-agent/pipeline/writeback/send.ts', '../../services/writeback-config.js'],
    ['src-agent/services/mappings.ts', '../temporal/scheduler.js'],
    ['src-agent/temporal/worker.ts', '../webhooks/server.js'],
    ['src-agent/webhooks/server.ts', '../cli/context.js'],
    ['src-agent/logging/logger.ts', '../connectors/registry.js'],
  ])('refuses %s importing %s', async (file, from) => {
    const messages = await restricted(file, `import { x } from '${from}'\nexport const y = x\n`)
    expect(messages).toEqual([expect.stringContaining('src-agent layers:')])
  })

  it('lets a layer import the ones below it, and keeps Electron out of the agent', async () => {
    expect(
      await restricted(
        'src-agent/cli/sync.ts',
        `import { x } from '../pipeline/run-sync.js'\nexport const y = x\n`,
      ),
    ).toEqual([])
    expect(
      await restricted(
        'src-agent/pipeline/run-sync.ts',
        `import { app } from 'electron'\nexport const y = app\n`,
      ),
    ).toEqual([expect.stringContaining('Electron belongs to src-main')])
  })
})
