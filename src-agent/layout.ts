/**
 * Where the agent's runtime files are. The agent runs either from its TypeScript sources (tsx,
 * vitest) or from its build in out/agent (`npm run build:agent`): plain JavaScript in the same
 * folders as the sources (src-agent, db, shared), with the SQL migrations copied beside db/ and
 * package.json's version beside them. A path relative to a module is therefore the same in both;
 * only what the build adds is decided here.
 */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/** True under tsx or vitest (this module is a .ts file), false in the build. */
export const runsFromSource = import.meta.url.endsWith('.ts')

/** The repository root from source; out/agent when built. */
const agentRoot = path.dirname(path.dirname(fileURLToPath(import.meta.url)))

/** The prebuilt workflow bundle: written by the build, used by the worker in both modes. */
export const WORKFLOW_BUNDLE_PATH = runsFromSource
  ? path.join(agentRoot, 'out', 'agent', 'workflow-bundle.js')
  : path.join(agentRoot, 'workflow-bundle.js')

/** The workflow source; the build has none (it runs its bundle only). */
export const WORKFLOWS_SOURCE_PATH: string | undefined = runsFromSource
  ? path.join(agentRoot, 'src-agent', 'temporal', 'workflows.ts')
  : undefined

/** The agent's version: package.json's, which the build copies beside its files. */
export function agentVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(path.join(agentRoot, 'package.json'), 'utf8')) as {
      version?: string
    }
    return pkg.version ?? '0.0.0'
  } catch {
    return '0.0.0'
  }
}
