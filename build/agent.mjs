#!/usr/bin/env node
// Builds the sync agent into out/agent (`npm run build:agent`): plain ESM JavaScript in the same
// folders as the TypeScript it comes from (src-agent, db, shared; packages stay in
// node_modules), the SQL migrations beside db/, package.json's version, the Temporal workflow
// bundle, and two entry points:
//   out/agent/cli.js   `node out/agent/cli.js <command>`: the gtm-agent process
//   out/agent/main.js  exports runAgent(args, env) and does nothing on import
//   out/agent/service.js  the desktop app's agent process: RPC over the link main hands it
// The build is made in a scratch folder and moved into place at the end, with build.json (when
// the build started) written last: src-agent/bin/agent-entry.mjs runs it only when complete and
// newer than every source file.
import { cp, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { bundleWorkflowCode } from '@temporalio/worker'
import { build } from 'esbuild'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const SOURCES = ['src-agent', 'db', 'shared']
const NOT_BUILT = [path.join(root, 'src-agent', 'bin')]
const WORKFLOWS = path.join(root, 'src-agent', 'temporal', 'workflows.ts')
// Written by hand below; the module they re-export from is src-agent/cli/run.ts.
const ENTRY_MODULE = './src-agent/cli/run.js'
// The desktop app's agent process (utilityProcess.fork runs out/agent/service.js).
const SERVICE_MODULE = './src-agent/rpc/process.js'

async function main() {
  const startedAt = Date.now()
  const out = path.resolve(root, process.argv[2] ?? 'out/agent')
  const scratch = `${out}.building-${process.pid}`
  await rm(scratch, { recursive: true, force: true })
  await mkdir(scratch, { recursive: true })
  try {
    const files = (await Promise.all(SOURCES.map((dir) => typeScriptFiles(path.join(root, dir)))))
      .flat()
      .sort()
    await build({
      entryPoints: files,
      outdir: scratch,
      outbase: root,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      logLevel: 'warning',
    })
    // The SQL and its journal; drizzle-kit's snapshots are for generating the next migration.
    await cp(path.join(root, 'db', 'migrations'), path.join(scratch, 'db', 'migrations'), {
      recursive: true,
      filter: (file) => !file.endsWith('_snapshot.json'),
    })
    const pkg = JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8'))
    await writeFile(
      path.join(scratch, 'package.json'),
      `${JSON.stringify({ version: pkg.version, private: true, type: 'module' }, null, 2)}\n`,
    )
    await writeFile(
      path.join(scratch, 'cli.js'),
      `#!/usr/bin/env node\nimport { runAgentProcess } from '${ENTRY_MODULE}'\n\nawait runAgentProcess()\n`,
    )
    await writeFile(path.join(scratch, 'main.js'), `export { runAgent } from '${ENTRY_MODULE}'\n`)
    await writeFile(path.join(scratch, 'service.js'), `import '${SERVICE_MODULE}'\n`)
    const { code } = await bundleWorkflowCode({
      workflowsPath: WORKFLOWS,
      logger: quietLogger,
    })
    await writeFile(path.join(scratch, 'workflow-bundle.js'), code)
    await writeFile(
      path.join(scratch, 'build.json'),
      `${JSON.stringify({ version: pkg.version, startedAt }, null, 2)}\n`,
    )
    await rm(out, { recursive: true, force: true })
    await rename(scratch, out)
  } catch (err) {
    await rm(scratch, { recursive: true, force: true })
    throw err
  }
  const seconds = ((Date.now() - startedAt) / 1000).toFixed(1)
  console.log(`Built the agent into ${path.relative(root, out) || out} in ${seconds} s.`)
}

/** Every .ts file under `dir`, but not declaration files nor the bin folder. */
async function typeScriptFiles(dir) {
  if (NOT_BUILT.includes(dir)) return []
  const found = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name)
    if (entry.isDirectory()) found.push(...(await typeScriptFiles(file)))
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) found.push(file)
  }
  return found
}

// webpack's progress lines are not worth a build log; warnings and errors still show.
const quietLogger = {
  log: () => undefined,
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: (message) => console.warn(`workflow bundle: ${message}`),
  error: (message) => console.error(`workflow bundle: ${message}`),
}

main().catch((err) => {
  console.error(`error: building the agent failed: ${err instanceof Error ? err.message : err}`)
  process.exitCode = 1
})
