/**
 * Main's side of the agent process: starts it, talks RPC to it (request ids, deadlines,
 * cancellation, events), restarts it with backoff when it crashes, gives up after too many crashes
 * in a short time, and stops it gracefully when the app quits. Plain Node: how the process is
 * started (Electron's utilityProcess, Node's fork in tests) is passed in.
 */
import { failure, isRetryable } from '../../shared/contract.js'
import type { CallError, CallInput, CallOutput, CallResult } from '../../shared/contract.js'
import { agentEvents, agentRpc, fromAgentMessageSchema } from '../../shared/rpc.js'
import type { AgentEventName, AgentMethod, AgentRpc, ToAgentMessage } from '../../shared/rpc.js'
import type { IpcEvent } from '../../shared/ipc.js'

/** One started agent process, as the supervisor sees it. */
export interface AgentProcess {
  readonly pid: number | null
  post(message: ToAgentMessage): void
  onMessage(listener: (message: unknown) => void): void
  /** Called once when the process has exited, with its code (null when killed by a signal). */
  onExit(listener: (code: number | null) => void): void
  /** Ends it at once (SIGKILL or the platform's equivalent). */
  kill(): void
}

export type SpawnAgent = () => AgentProcess

export type AgentStatus = IpcEvent<'agent:status'>

export interface SupervisorOptions {
  spawn: SpawnAgent
  /** Restarts allowed within `crashWindowMs`; the crash after them stops restarting. Default 3. */
  maxRestarts?: number
  /** Default 5 minutes. */
  crashWindowMs?: number
  /** Wait before restart n (0-based): default 1 s, 2 s, 4 s … up to 30 s. */
  backoffMs?: (attempt: number) => number
  /** How long a call waits for an answer unless it says otherwise. Default 30 s. */
  callTimeoutMs?: number
  /** How long a graceful stop waits before killing the process. Default 15 s. */
  stopTimeoutMs?: number
  /**
   * After a cancel, how long to wait for the agent's own answer (a sync's summary, a sign-in's
   * closed port) before giving up on it. Default 5 s.
   */
  cancelGraceMs?: number
  /** Where events (progress, sign-in) and status changes go. */
  onEvent?: (event: AgentEventName, data: unknown, requestId: number | null) => void
  onStatus?: (status: AgentStatus) => void
  log?: (
    level: 'info' | 'warn' | 'error',
    message: string,
    fields?: Record<string, unknown>,
  ) => void
  now?: () => number
}

export interface CallOptions {
  /** null: no deadline (a sync); the caller's signal still cancels it. */
  timeoutMs?: number | null
  signal?: AbortSignal
  /** Events the agent emits about this very call (a sync's progress). */
  onEvent?: (event: AgentEventName, data: unknown) => void
}

interface Pending {
  method: string
  resolve: (result: CallResult<unknown>) => void
  onEvent: CallOptions['onEvent']
}

interface Generation {
  process: AgentProcess
  ready: boolean
  pending: Map<number, Pending>
}

export class AgentSupervisor {
  readonly #options: Required<Omit<SupervisorOptions, 'onEvent' | 'onStatus' | 'log'>> &
    Pick<SupervisorOptions, 'onEvent' | 'onStatus' | 'log'>
  #generation: Generation | undefined
  #status: AgentStatus = {
    state: 'stopped',
    pid: null,
    restarts: 0,
    nextStartAt: null,
    lastError: null,
  }
  /** When recent crashes happened, for the crash window. */
  #crashes: number[] = []
  #restartTimer: NodeJS.Timeout | undefined
  #nextId = 1
  /** Calls waiting for the agent to be ready. */
  #waiting = new Set<() => void>()
  #stopping = false

  constructor(options: SupervisorOptions) {
    this.#options = {
      maxRestarts: 3,
      crashWindowMs: 5 * 60_000,
      backoffMs: (attempt) => Math.min(30_000, 1_000 * 2 ** attempt),
      callTimeoutMs: 30_000,
      stopTimeoutMs: 15_000,
      cancelGraceMs: 5_000,
      now: () => Date.now(),
      ...options,
    }
  }

  get status(): AgentStatus {
    return { ...this.#status }
  }

  /** Starts the agent (after `app` is ready). */
  start(): void {
    this.#stopping = false
    this.#launch('starting')
  }

  /** "Restart agent": a fresh start with the crash history forgotten. */
  restart(): AgentStatus {
    clearTimeout(this.#restartTimer)
    this.#crashes = []
    const current = this.#generation
    if (current) {
      this.#generation = undefined
      this.#failPending(current, failure('agent_unavailable', 'The agent is restarting.').error)
      current.process.kill()
    }
    this.#stopping = false
    this.#launch('starting')
    return this.status
  }

  /**
   * Calls one agent method. Resolves to its CallResult: never throws. Waits for the agent while
   * it starts or restarts; a deadline, a cancel or the agent's exit end the call with an error
   * that says so.
   */
  call<M extends AgentMethod>(
    method: M,
    input: CallInput<AgentRpc, M>,
    options: CallOptions = {},
  ): Promise<CallResult<CallOutput<AgentRpc, M>>> {
    const timeoutMs =
      options.timeoutMs === undefined ? this.#options.callTimeoutMs : options.timeoutMs
    return new Promise((resolve) => {
      let settled = false
      let requestId: number | undefined
      let timer: NodeJS.Timeout | undefined
      let generation: Generation | undefined
      const finish = (result: CallResult<unknown>): void => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        options.signal?.removeEventListener('abort', onAbort)
        this.#waiting.delete(send)
        resolve(result as CallResult<CallOutput<AgentRpc, M>>)
      }
      const giveUp = (error: CallError): void => {
        if (requestId !== undefined && generation) {
          generation.pending.delete(requestId)
          // The agent stops the work too: a sync stops after its page, a sign-in closes its port.
          this.#post(generation, { type: 'cancel', id: requestId })
        }
        finish({ ok: false, error })
      }
      const cancelled = failure('rpc_cancelled', `${describeMethod(method)} was cancelled.`).error
      const onAbort = (): void => {
        clearTimeout(timer)
        if (requestId === undefined || !generation) return giveUp(cancelled)
        // The agent stops the work and answers (a sync with what it committed, a sign-in once
        // its port is closed); that answer is the call's, unless it takes too long.
        this.#post(generation, { type: 'cancel', id: requestId })
        timer = setTimeout(() => giveUp(cancelled), this.#options.cancelGraceMs)
      }
      const send = (): void => {
        if (settled) return
        this.#waiting.delete(send)
        const current = this.#generation
        if (!current?.ready) {
          if (this.#status.state === 'crashed' || this.#status.state === 'stopped') {
            finish({ ok: false, error: this.#unavailable() })
            return
          }
          this.#waiting.add(send)
          return
        }
        generation = current
        requestId = this.#nextId++
        current.pending.set(requestId, {
          method,
          resolve: (result) => finish(this.#checkOutput(method, result)),
          onEvent: options.onEvent,
        })
        this.#post(current, { type: 'request', id: requestId, method, input })
      }
      if (options.signal?.aborted) return onAbort()
      options.signal?.addEventListener('abort', onAbort, { once: true })
      if (timeoutMs !== null) {
        timer = setTimeout(
          () =>
            giveUp(
              failure(
                'rpc_timeout',
                `The agent did not answer ${describeMethod(method)} within ${Math.round(timeoutMs / 1000)} s. Try again; if it keeps happening, restart the agent from Diagnostics.`,
              ).error,
            ),
          timeoutMs,
        )
      }
      send()
    })
  }

  /**
   * Quits gracefully: asks the agent to stop (a sync finishes the page in hand, which is
   * committed; the next sync resumes after it), waits for it to exit, kills it after the timeout.
   */
  async stop(): Promise<void> {
    this.#stopping = true
    clearTimeout(this.#restartTimer)
    const current = this.#generation
    if (!current) {
      this.#setStatus({ state: 'stopped', pid: null, nextStartAt: null })
      return
    }
    const exited = new Promise<void>((resolve) => current.process.onExit(() => resolve()))
    this.#post(current, { type: 'shutdown' })
    const timer = setTimeout(() => current.process.kill(), this.#options.stopTimeoutMs)
    await exited
    clearTimeout(timer)
  }

  // --- implementation ---

  #launch(state: 'starting' | 'restarting'): void {
    let child: AgentProcess
    try {
      child = this.#options.spawn()
    } catch (err) {
      this.#crashed(`The agent could not be started: ${describe(err)}`)
      return
    }
    const generation: Generation = { process: child, ready: false, pending: new Map() }
    this.#generation = generation
    this.#setStatus({ state, pid: child.pid, nextStartAt: null })
    child.onMessage((raw) => this.#onMessage(generation, raw))
    child.onExit((code) => this.#onExit(generation, code))
  }

  #onMessage(generation: Generation, raw: unknown): void {
    if (generation !== this.#generation) return
    const parsed = fromAgentMessageSchema.safeParse(raw)
    if (!parsed.success) {
      this.#options.log?.('warn', 'ignored a malformed message from the agent')
      return
    }
    const message = parsed.data
    switch (message.type) {
      case 'ready':
        generation.ready = true
        this.#setStatus({ state: 'ready', pid: message.pid, lastError: null })
        for (const send of [...this.#waiting]) send()
        return
      case 'fatal':
        this.#status.lastError = message.error.message
        this.#options.log?.('error', 'the agent could not start', { error: message.error.message })
        return
      case 'response': {
        const pending = generation.pending.get(message.id)
        if (!pending) return
        generation.pending.delete(message.id)
        const result = message.result
        pending.resolve(
          result.ok
            ? result
            : {
                ok: false,
                error: {
                  code: result.error.code as CallError['code'],
                  message: result.error.message,
                  retryable: result.error.retryable,
                },
              },
        )
        return
      }
      case 'event': {
        const schema = agentEvents[message.event]
        const data = schema.safeParse(message.data)
        if (!data.success) {
          this.#options.log?.('warn', 'ignored a malformed event from the agent', {
            event: message.event,
          })
          return
        }
        if (message.requestId !== null) {
          generation.pending.get(message.requestId)?.onEvent?.(message.event, data.data)
        }
        this.#options.onEvent?.(message.event, data.data, message.requestId)
        return
      }
    }
  }

  #onExit(generation: Generation, code: number | null): void {
    if (generation !== this.#generation) return
    this.#generation = undefined
    const graceful = this.#stopping && code === 0
    const why = this.#status.lastError
    this.#failPending(
      generation,
      this.#stopping
        ? failure('agent_stopped', 'The agent stopped because the app is quitting.').error
        : failure(
            'agent_unavailable',
            'The agent stopped unexpectedly while answering; it is being restarted. Try again in a moment.',
          ).error,
    )
    if (this.#stopping) {
      this.#setStatus({ state: 'stopped', pid: null, nextStartAt: null })
      if (!graceful) this.#options.log?.('warn', 'the agent did not stop cleanly', { code })
      return
    }
    this.#crashed(
      why ?? `The agent exited unexpectedly (${code === null ? 'killed' : `exit code ${code}`}).`,
    )
  }

  #crashed(message: string): void {
    const now = this.#options.now()
    this.#crashes = this.#crashes.filter((t) => now - t < this.#options.crashWindowMs)
    this.#crashes.push(now)
    const restartsInWindow = this.#crashes.length - 1
    this.#options.log?.('error', 'the agent crashed', {
      message,
      crashesInWindow: this.#crashes.length,
    })
    if (restartsInWindow >= this.#options.maxRestarts) {
      this.#setStatus({
        state: 'crashed',
        pid: null,
        nextStartAt: null,
        lastError: `${message} It crashed ${this.#crashes.length} times within ${Math.round(this.#options.crashWindowMs / 60_000)} minutes, so it is not restarted again. Choose "Restart agent" when the cause is fixed.`,
      })
      for (const send of [...this.#waiting]) send()
      return
    }
    const delay = this.#options.backoffMs(restartsInWindow)
    this.#setStatus({
      state: 'restarting',
      pid: null,
      restarts: this.#status.restarts + 1,
      nextStartAt: new Date(now + delay).toISOString(),
      lastError: message,
    })
    this.#restartTimer = setTimeout(() => this.#launch('restarting'), delay)
  }

  #failPending(generation: Generation, error: CallError): void {
    for (const pending of generation.pending.values()) pending.resolve({ ok: false, error })
    generation.pending.clear()
  }

  #post(generation: Generation, message: ToAgentMessage): void {
    try {
      generation.process.post(message)
    } catch (err) {
      this.#options.log?.('warn', 'could not send to the agent', { error: describe(err) })
    }
  }

  /** Main trusts the agent no more than the agent trusts main: every answer is parsed again. */
  #checkOutput(method: AgentMethod, result: CallResult<unknown>): CallResult<unknown> {
    if (!result.ok) return result
    const output = agentRpc[method].output.safeParse(result.data)
    if (output.success) return { ok: true, data: output.data }
    this.#options.log?.('error', 'the agent answered with a malformed result', { method })
    return failure('internal', `The agent answered ${method} with a malformed result.`)
  }

  #unavailable(): CallError {
    const state = this.#status.state
    const error =
      state === 'crashed'
        ? failure(
            'agent_unavailable',
            `The agent is not running: ${this.#status.lastError ?? 'it crashed.'}`,
          ).error
        : failure('agent_stopped', 'The agent is not running because the app is quitting.').error
    // A crashed agent needs "Restart agent": trying the same call again will not help.
    return { ...error, retryable: state === 'crashed' ? false : isRetryable(error.code) }
  }

  #setStatus(change: Partial<AgentStatus>): void {
    this.#status = { ...this.#status, ...change }
    this.#options.onStatus?.(this.status)
  }
}

function describeMethod(method: string): string {
  return `"${method}"`
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
