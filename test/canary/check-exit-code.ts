/**
 * The exit-code canary, run by `npm test` before the suite: the project's vitest set-up (its
 * config and global setup) must exit non-zero when a test fails, a hook fails, an error goes
 * unhandled or a file fails to load, and zero when everything passes. If anything the runner
 * imports takes over the process exit, this fails and so does `npm test`.
 */
import { spawn } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
const vitestBin = path.join(repoRoot, 'node_modules/vitest/vitest.mjs')

interface Expectation {
  fixture: string
  /** True when the run must exit 0. */
  passes: boolean
  /** Text the run's output must hold, so a run that died for another reason does not count. */
  says: RegExp
}

const expectations: Expectation[] = [
  { fixture: 'passing', passes: true, says: /Tests\s+1 passed/ },
  { fixture: 'failing-assertion', passes: false, says: /Tests\s+1 failed/ },
  { fixture: 'failing-hook', passes: false, says: /a setup hook that fails on purpose/ },
  { fixture: 'unhandled-error', passes: false, says: /an unhandled rejection on purpose/ },
  { fixture: 'load-error', passes: false, says: /a test file that fails to load on purpose/ },
]

function run(fixture: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [vitestBin, 'run', '--config', 'test/canary/vitest.config.ts'],
      {
        cwd: repoRoot,
        env: { ...process.env, CANARY_FIXTURE: fixture, FORCE_COLOR: '0', NO_COLOR: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    let output = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, output }))
  })
}

/** Two at a time: each run starts the suite's global setup (an embedded Postgres). */
async function runAll(): Promise<Array<{ code: number | null; output: string }>> {
  const results: Array<{ code: number | null; output: string }> = []
  let next = 0
  const lane = async (): Promise<void> => {
    while (next < expectations.length) {
      const index = next++
      results[index] = await run(expectations[index]!.fixture)
    }
  }
  await Promise.all([lane(), lane()])
  return results
}

let wrong = 0
const results = await runAll()
for (const [index, expected] of expectations.entries()) {
  const { code, output } = results[index]!
  const exitRight = expected.passes ? code === 0 : code !== 0 && code !== null
  const saidRight = expected.says.test(output)
  if (exitRight && saidRight) {
    console.log(`canary ${expected.fixture}: exit ${String(code)}, as it must`)
    continue
  }
  wrong++
  console.error(
    `canary ${expected.fixture}: exit ${String(code)}, but it must ${expected.passes ? 'be 0' : 'be non-zero'}` +
      (saidRight ? '' : ` and the output must match ${String(expected.says)}`) +
      `\n--- its output ---\n${output}\n---`,
  )
}
if (wrong > 0) {
  console.error(
    `error: the test runner's exit code does not tell the truth (${wrong} of ${expectations.length} canaries wrong); no test result can be trusted until it does.`,
  )
  process.exit(1)
}
console.log(`canary: the test runner's exit code tells the truth (${expectations.length} checks)`)
