/**
 * Bundles the workflow code, so a worker starts without webpack:
 * `tsx src-agent/temporal/bundle.ts [out-file]` writes out/agent/workflow-bundle.js, which
 * the worker uses when it is not older than workflows.ts. (`npm run build:agent` writes the
 * same file with the rest of the built agent.)
 */
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { bundleWorkflowCode } from '@temporalio/worker'
import { WORKFLOW_BUNDLE_PATH, WORKFLOWS_SOURCE_PATH } from '../layout.js'

/** Writes the workflow bundle to `outFile` and returns its size in bytes. */
export async function writeWorkflowBundle(outFile = WORKFLOW_BUNDLE_PATH): Promise<number> {
  if (!WORKFLOWS_SOURCE_PATH) throw new Error('the workflows are bundled from their source only')
  const { code } = await bundleWorkflowCode({ workflowsPath: WORKFLOWS_SOURCE_PATH })
  await mkdir(path.dirname(outFile), { recursive: true })
  await writeFile(outFile, code)
  return Buffer.byteLength(code)
}

const entry = process.argv[1]
if (entry && import.meta.url === pathToFileURL(path.resolve(entry)).href) {
  const outFile = path.resolve(process.argv[2] ?? WORKFLOW_BUNDLE_PATH)
  try {
    const bytes = await writeWorkflowBundle(outFile)
    process.stdout.write(
      `Wrote the workflow bundle to ${outFile} (${Math.round(bytes / 1024)} KiB).\n`,
    )
  } catch (err) {
    process.stderr.write(
      `error: bundling the workflows failed: ${err instanceof Error ? err.message : String(err)}\n`,
    )
    process.exitCode = 1
  }
}
