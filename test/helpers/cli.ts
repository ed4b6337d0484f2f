import { spawn, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

/**
 * Runs the real `gtm-agent` in a child process with exactly the agent variables given.
 * `options.entry` runs another script than the bin (the built agent's cli.js, an installed bin).
 */
export function runCli(
  args: string[],
  env: Record<string, string | undefined>,
  options: { onStart?: (child: ChildProcess) => void; entry?: string } = {},
): Promise<CliResult> {
  const agentVariables = /^(DATABASE_URL|CONNECTOR_ENCRYPTION_KEYS?(_PREVIOUS)?|GTM_.*|LOG_LEVEL)$/
  const childEnv: Record<string, string> = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !agentVariables.test(name)) childEnv[name] = value
  }
  for (const [name, value] of Object.entries(env)) if (value !== undefined) childEnv[name] = value
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [options.entry ?? path.join(repoRoot, 'src-agent/bin/gtm-agent.mjs'), ...args],
      {
        cwd: repoRoot,
        env: childEnv,
      },
    )
    options.onStart?.(child)
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

export function stderrLines(result: CliResult): string[] {
  return result.stderr.split('\n').filter((line) => line.trim() !== '')
}
