import { ipcMain } from 'electron'
import type { IpcMainInvokeEvent, WebContents } from 'electron'
import { dispatch, failure } from '../../shared/contract.js'
import { ipc, ipcChannels, ipcEvents } from '../../shared/ipc.js'
import type { IpcChannel, IpcEventName, IpcHandlers } from '../../shared/ipc.js'
import { rendererUrl } from '../renderer-url.js'
import type { LogLevel } from '../log.js'
import { isTrustedSender } from './sender.js'

/** The one channel events travel on, main → renderer: `{ event, data }`. */
export const EVENT_CHANNEL = 'gtm:event'

type Log = (level: LogLevel, message: string, fields?: Record<string, unknown>) => void

/**
 * Registers every channel of the contract with ipcMain. Every call is checked to come from our
 * renderer's top frame, then parsed and answered by the shared dispatch; the renderer always gets
 * a CallResult. The IpcHandlers type makes a missing channel a compile error.
 */
export function handleAll(handlers: IpcHandlers, log: Log): void {
  for (const channel of ipcChannels) register(channel, handlers, log)
}

function register<C extends IpcChannel>(channel: C, handlers: IpcHandlers, log: Log): void {
  ipcMain.handle(channel, async (event, rawInput: unknown) => {
    if (!isFromOurRenderer(event)) {
      log('warn', 'refused an IPC call from an untrusted page', { channel })
      return failure('ipc_sender_untrusted', `${channel} was called from an untrusted page.`)
    }
    return dispatch(ipc, channel, rawInput, handlers[channel], {
      reportInternal: (message, err) =>
        log('error', message, { channel, error: err instanceof Error ? err.message : String(err) }),
    })
  })
}

/** Pushes one event to the renderer, parsed with its contract schema first. */
export function sendEvent(
  contents: WebContents,
  event: IpcEventName,
  data: unknown,
  log: Log,
): void {
  const parsed = ipcEvents[event].safeParse(data)
  if (!parsed.success) {
    log('error', 'an event does not match the contract', { event })
    return
  }
  if (!contents.isDestroyed()) contents.send(EVENT_CHANNEL, { event, data: parsed.data })
}

function isFromOurRenderer(event: IpcMainInvokeEvent): boolean {
  return isTrustedSender(event.senderFrame, rendererUrl())
}
