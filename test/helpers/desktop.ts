import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { dispatch, type CallResult } from '../../shared/contract.js'
import { ipc, type IpcChannel, type IpcHandlers } from '../../shared/ipc.js'
import { forkAgent } from '../../src-main/agent/fork.js'
import { createHandlers } from '../../src-main/ipc/handlers.js'
import { osKeychain } from '../../src-main/secrets/keychain.js'
import { memorySettings, SettingsStore } from '../../src-main/settings/store.js'
import { AgentSupervisor, type SupervisorOptions } from '../../src-main/agent/supervisor.js'
import { chooseAgent } from '../../src-agent/bin/agent-entry.mjs'
import { TEST_KEY_HEX } from './agent.js'
import { repoRoot } from './cli.js'
import { databaseUrl } from './db.js'

/**
 * The agent process entry, as the app starts it: out/agent/service.js when the build is current
 * (what utilityProcess.fork runs in the packaged app), else the same module from source via tsx.
 */
export function agentServiceEntry(env: Record<string, string | undefined> = process.env): {
  entry: string
  execArgv: string[]
} {
  // A TypeScript connector module (a test's) needs the agent from source, like gtm-agent.
  const choice = chooseAgent(env) as { from: 'build' | 'source' }
  if (choice.from === 'build') {
    return { entry: path.join(repoRoot, 'out/agent/service.js'), execArgv: [] }
  }
  return {
    entry: fileURLToPath(new URL('../../src-agent/rpc/process.ts', import.meta.url)),
    execArgv: ['--import', 'tsx'],
  }
}

export interface AgentUnderTest {
  supervisor: AgentSupervisor
  /** GTM_DATA_DIR of the agent: a temporary folder of its own. */
  dataDir: string
  /** Every line the agent process wrote to stderr (its log). */
  stderr: string[]
  close(): Promise<void>
}

/**
 * A supervised agent process over this run's database, started with Node's fork: no worker
 * unless asked, the test key, and `app:tester` as the audit user.
 */
export async function startAgentProcess(
  options: {
    env?: Record<string, string | undefined>
    supervisor?: Partial<SupervisorOptions>
    entry?: { entry: string; execArgv: string[] }
  } = {},
): Promise<AgentUnderTest> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'gtm-agent-proc-'))
  const stderr: string[] = []
  const { entry, execArgv } = options.entry ?? agentServiceEntry({ ...process.env, ...options.env })
  const inherited: Record<string, string | undefined> = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (!/^(DATABASE_URL|CONNECTOR_ENCRYPTION_KEYS?(_PREVIOUS)?|GTM_.*|TEMPORAL_.*)$/.test(name)) {
      inherited[name] = value
    }
  }
  const supervisor = new AgentSupervisor({
    spawn: forkAgent({
      entry,
      execArgv,
      env: {
        ...inherited,
        DATABASE_URL: databaseUrl(),
        CONNECTOR_ENCRYPTION_KEY: TEST_KEY_HEX,
        GTM_DATA_DIR: dataDir,
        GTM_USER: 'app:tester',
        GTM_AGENT_WORKER: 'off',
        LOG_LEVEL: 'info',
        ...options.env,
      },
      onStderr: (line) => stderr.push(line),
    }),
    ...options.supervisor,
  })
  supervisor.start()
  return {
    supervisor,
    dataDir,
    stderr,
    close: async () => {
      await supervisor.stop()
      await rm(dataDir, { recursive: true, force: true })
    },
  }
}

/** The data of a successful call; a failed one throws with its code and message. */
export function callData<T>(result: CallResult<T>): T {
  if (!result.ok) throw new Error(`call failed: ${result.error.code}: ${result.error.message}`)
  return result.data
}

/**
 * Main's renderer handlers over a supervised agent, as the app wires them, with a test's stand-in
 * for the system browser and in-memory settings; `call` runs a channel through the shared dispatch.
 */
export function appHandlers(
  agent: AgentUnderTest,
  options: {
    redirectPort: number
    openSignInPage: (url: string) => void
    signInTimeoutMs: number
    /** Receives what the app would put on the clipboard. */
    copyText?: (text: string) => void
  },
): {
  handlers: IpcHandlers
  call: (channel: IpcChannel, input?: unknown) => Promise<CallResult<unknown>>
} {
  const handlers = createHandlers({
    app: { name: 'GTM Clarity Connect', version: '0.0.0-test' },
    agent: agent.supervisor,
    settings: new SettingsStore(memorySettings({ redirectPort: options.redirectPort })),
    keychain: async () => ({
      ...(await osKeychain('GTM test').probe()),
      encryptionKeySource: null,
    }),
    openSignInPage: async (url) => options.openSignInPage(url),
    copyText: (text) => options.copyText?.(text),
    setDatabasePassword: async () => {
      throw new Error('These tests keep no database password.')
    },
    log: () => undefined,
    signInTimeoutMs: options.signInTimeoutMs,
  })
  return {
    handlers,
    call: (channel, input) => dispatch(ipc, channel, input, handlers[channel] as never),
  }
}

/**
 * The tenant's only connection once every stream has been read (by whichever worker runs it),
 * asked of the agent over RPC.
 */
export async function firstSyncDone(agent: AgentUnderTest, tenantId: string, what: string) {
  const deadline = Date.now() + 60_000
  for (;;) {
    const [connection] = callData(await agent.supervisor.call('connections:list', { tenantId }))
    const done = connection?.streams.every((s) => s.status !== 'never' && s.status !== 'running')
    if (connection?.lastSyncAt && done) return connection
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
}
