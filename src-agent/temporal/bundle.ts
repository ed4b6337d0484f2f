/**
 * Bundles the workflow code at build time, so a worker starts without webpack:
 * `tsx src-agent/temporal/bundle.ts [out-file]` writes out/temporal/workflow-bundle.js, which
 * the worker uses when it is not older than workflows.ts.
 */
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { pathToFileURL } from 'node:url'
import { bundleWorkflowCode } from '@temporalio/worker'
import { WORKFLOW_BUNDLE_PATH, WORKFLOWS_SOURCE_PATH } from './worker.js'

/** Writes the workflow bundle to `outFile` and returns its size in bytes. */
export async function writeWorkflowBundle(outFile = WORKFLOW_BUNDLE_PATH): Promise<number> {
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
