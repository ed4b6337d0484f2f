/**
 * The agent's RPC server: answers main's requests over the link with the one dispatch of
 * shared/contract.ts (input parsed, handler run, output parsed and stripped), so a bad request is
 * a clear error and nothing the contract does not list leaves the process. Each request has an
 * id; a `cancel` with that id fires the handler's signal; events a handler emits carry its id.
 */
import type { CallHandlers, Contract } from '../../shared/contract.js'
import { dispatch, failure } from '../../shared/contract.js'
import { agentEvents, toAgentMessageSchema } from '../../shared/rpc.js'
import type { AgentEventName, FromAgentMessage } from '../../shared/rpc.js'
import type { Logger } from '../logging/logger.js'
import type { AgentLink } from './port.js'

export interface RpcServer {
  /** Requests being answered now. */
  readonly inFlight: number
  /** Resolves once every request in flight has been answered. */
  drained(): Promise<void>
}

export function serveRpc<K extends Contract>(options: {
  link: AgentLink
  contract: K
  handlers: CallHandlers<K>
  log: Logger
  /** Main asked the agent to quit. */
  onShutdown: () => void
}): RpcServer {
  const { link, contract, handlers, log } = options
  const running = new Map<number, { controller: AbortController; done: Promise<void> }>()
  const post = (message: FromAgentMessage): void => link.post(message)

  const emitFor =
    (requestId: number) =>
    (event: string, data: unknown): void => {
      const schema = agentEvents[event as AgentEventName]
      const parsed = schema?.safeParse(data)
      if (!schema || !parsed?.success) {
        log.error({ event, issues: parsed?.error?.issues }, 'an event does not match the contract')
        return
      }
      post({ type: 'event', event: event as AgentEventName, requestId, data: parsed.data })
    }

  link.onMessage((raw) => {
    const message = toAgentMessageSchema.safeParse(raw)
    if (!message.success) {
      log.warn(
        { issues: message.error.issues },
        'ignored a message from main that is not a request',
      )
      const id = (raw as { id?: unknown } | null)?.id
      if (typeof id === 'number') {
        post({
          type: 'response',
          id,
          result: failure('ipc_input_invalid', 'The request to the agent was not well formed.'),
        })
      }
      return
    }
    const msg = message.data
    if (msg.type === 'shutdown') return options.onShutdown()
    if (msg.type === 'cancel') return running.get(msg.id)?.controller.abort()
    if (running.has(msg.id)) {
      post({
        type: 'response',
        id: msg.id,
        result: failure('ipc_input_invalid', `Request id ${msg.id} is already in use.`),
      })
      return
    }
    const controller = new AbortController()
    const method = msg.method as keyof K & string
    const handler = Object.hasOwn(handlers, method) ? handlers[method] : undefined
    const done = (async () => {
      const result = handler
        ? await dispatch(contract, method, msg.input, handler, {
            signal: controller.signal,
            emit: emitFor(msg.id),
            reportInternal: (text, err) => log.error({ err, method }, text),
          })
        : failure('ipc_input_invalid', `The agent has no method "${msg.method}".`)
      running.delete(msg.id)
      post({ type: 'response', id: msg.id, result })
    })()
    running.set(msg.id, { controller, done })
  })

  return {
    get inFlight() {
      return running.size
    },
    drained: async () => {
      while (running.size > 0) await Promise.all([...running.values()].map((r) => r.done))
    },
  }
}
