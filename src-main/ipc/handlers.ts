/**
 * Every renderer channel's handler, as plain functions: main registers them with ipcMain, tests
 * call them under Node through the same dispatch. Agent channels are forwarded as they are (the
 * agent audits the mutations, as the app's user); main answers its own: the app, settings, the
 * agent process, the keychain and the browser sign-in.
 */
import { CallFailure } from '../../shared/contract.js'
import type { CallOptions } from '../agent/supervisor.js'
import type { AgentSupervisor } from '../agent/supervisor.js'
import { forwardedChannels } from '../../shared/ipc.js'
import type { ForwardedChannel, IpcHandler, IpcHandlers } from '../../shared/ipc.js'
import type { CallResult } from '../../shared/contract.js'
import type { Settings } from '../../shared/settings.js'
import { SettingsError, type SettingsStore } from '../settings/store.js'
import { KeychainUnavailable, type KeychainStatus } from '../secrets/keychain.js'
import type { EncryptionKeySource } from '../secrets/encryption-key.js'
import type { LogLevel } from '../log.js'

/** What the app:* handlers need to know, passed in so tests can run them under plain Node. */
export type AppInfo = { name: string; version: string }

export interface HandlerDeps {
  app: AppInfo
  agent: Pick<AgentSupervisor, 'call' | 'status' | 'restart'>
  settings: SettingsStore
  keychain: () => Promise<KeychainStatus & { encryptionKeySource: EncryptionKeySource | null }>
  /** Opens a vendor's sign-in page in the system browser (https only, in the app). */
  openSignInPage: (url: string) => Promise<void>
  /** Puts text on the system clipboard (Electron's clipboard in the app). */
  copyText: (text: string) => void
  /** Keeps (or, when empty, removes) the shared database's password in the OS keychain. */
  setDatabasePassword: (password: string) => Promise<void>
  /** Told when settings the agent starts with changed (database, Temporal, data folder). */
  onAgentSettingsChanged?: (changed: Array<keyof Settings>) => void
  log: (level: LogLevel, message: string, fields?: Record<string, unknown>) => void
  /** How long a sign-in waits for the browser. Default 5 minutes (MFA takes time). */
  signInTimeoutMs?: number
}

/** Settings the agent reads at start: changing one restarts it. */
const AGENT_SETTINGS: ReadonlyArray<keyof Settings> = ['database', 'temporal', 'dataFolder']

export function createHandlers(deps: HandlerDeps): IpcHandlers {
  const { agent, log } = deps
  const signInTimeoutMs = deps.signInTimeoutMs ?? 5 * 60_000
  /** Syncs started from this app, by connection, so Cancel can reach them. */
  const syncs = new Map<string, AbortController>()
  let signIn: AbortController | undefined

  const forwarded = Object.fromEntries(
    forwardedChannels.map((channel) => [channel, forward(agent, channel, syncs)]),
  ) as { [C in ForwardedChannel]: IpcHandler<C> }

  return {
    ...forwarded,

    'app:info': () => ({ name: deps.app.name, version: deps.app.version }),

    'agent:status': () => agent.status,

    'app:copyText': ({ text }) => {
      deps.copyText(text)
      log('info', 'text copied to the clipboard', { characters: text.length })
      return { copied: true as const }
    },

    'agent:restart': () => {
      log('info', 'the agent is restarted from the app')
      return agent.restart()
    },

    'settings:get': () => deps.settings.get(),

    'settings:set': (patch) => {
      let result: ReturnType<SettingsStore['update']>
      try {
        result = deps.settings.update(patch)
      } catch (err) {
        if (err instanceof SettingsError) throw CallFailure.of('config_invalid', err.message)
        throw err
      }
      if (result.changed.length > 0) log('info', 'settings changed', { changed: result.changed })
      const forAgent = result.changed.filter((key) => AGENT_SETTINGS.includes(key))
      if (forAgent.length > 0) deps.onAgentSettingsChanged?.(forAgent)
      return result.settings
    },

    'keychain:status': async () => await deps.keychain(),

    'settings:setDatabasePassword': async ({ password }) => {
      try {
        await deps.setDatabasePassword(password)
      } catch (err) {
        // The keychain says what is wrong and what to do; nothing was stored elsewhere.
        if (err instanceof KeychainUnavailable) throw CallFailure.of('config_invalid', err.message)
        throw err
      }
      log(
        'info',
        password ? 'the database password was changed' : 'the database password was removed',
      )
      deps.onAgentSettingsChanged?.(['database'])
      return { stored: password !== '' }
    },

    'sync:cancel': (input) => {
      const controller = syncs.get(syncKey(input))
      controller?.abort()
      return { cancelled: controller !== undefined }
    },

    'signin:begin': async (input, context) => {
      if (signIn) {
        throw CallFailure.of(
          'signin_in_progress',
          'A sign-in is already waiting in the browser: finish it there, or cancel it first.',
        )
      }
      const controller = new AbortController()
      signIn = controller
      try {
        const result = await agent.call(
          'signin:run',
          {
            ...input,
            redirectPort: deps.settings.get().redirectPort,
            timeoutMs: signInTimeoutMs,
          },
          {
            // The agent's own timeout ends the wait; this one only guards against a silent agent.
            timeoutMs: signInTimeoutMs + 60_000,
            signal: AbortSignal.any([context.signal, controller.signal]),
            onEvent: (event, data) => {
              const state = data as { phase?: string; url?: string }
              if (event !== 'signin:state' || state.phase !== 'waiting' || !state.url) return
              deps.openSignInPage(state.url).catch((err: unknown) => {
                log('warn', 'could not open the sign-in page in the browser', {
                  error: err instanceof Error ? err.message : String(err),
                })
              })
            },
          },
        )
        return unwrap(result)
      } finally {
        signIn = undefined
      }
    },

    'signin:cancel': () => {
      if (!signIn) return { cancelled: false }
      signIn.abort()
      return { cancelled: true }
    },
  } satisfies IpcHandlers
}

/** A renderer channel that is the agent's method of the same name. */
function forward<C extends ForwardedChannel>(
  agent: HandlerDeps['agent'],
  channel: C,
  syncs: Map<string, AbortController>,
): IpcHandler<C> {
  return async (input: unknown, context: { signal: AbortSignal }) => {
    const options: CallOptions = { signal: context.signal }
    if (channel !== 'sync:run') return unwrap(await agent.call(channel, input as never, options))
    // A sync has no deadline: it runs as long as the source has pages, and Cancel stops it.
    const key = syncKey(input as { tenantId: string; connectorType: string })
    if (syncs.has(key)) {
      throw CallFailure.of(
        'sync_in_progress',
        'This connection is already syncing; its progress is shown as it goes.',
      )
    }
    const controller = new AbortController()
    syncs.set(key, controller)
    try {
      return unwrap(
        await agent.call(channel, input as never, {
          timeoutMs: null,
          signal: AbortSignal.any([context.signal, controller.signal]),
        }),
      )
    } finally {
      syncs.delete(key)
    }
  }
}

function unwrap<T>(result: CallResult<T>): T {
  if (result.ok) return result.data
  throw new CallFailure(result.error)
}

function syncKey(target: { tenantId: string; connectorType: string }): string {
  return `${target.tenantId}\u0000${target.connectorType}`
}
