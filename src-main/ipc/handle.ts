import { ipcMain } from 'electron'
import type { IpcMainInvokeEvent } from 'electron'
import { ipcChannels } from '../../shared/ipc.js'
import type { IpcChannel, IpcHandler, IpcHandlers, IpcOutput, IpcResult } from '../../shared/ipc.js'
import { dispatch, isTrustedSenderUrl } from './dispatch.js'
import { rendererUrl } from '../renderer-url.js'

/**
 * Registers one channel with ipcMain. Every call is checked to come from our renderer's top
 * frame, then parsed and answered by dispatch(); the renderer always gets an IpcResult.
 */
export function handle<C extends IpcChannel>(channel: C, handler: IpcHandler<C>): void {
  ipcMain.handle(channel, async (event, rawInput: unknown): Promise<IpcResult<IpcOutput<C>>> => {
    if (!isFromOurRenderer(event)) {
      return {
        ok: false,
        error: {
          code: 'ipc_sender_untrusted',
          message: `${channel} was called from an untrusted page.`,
        },
      }
    }
    return dispatch(channel, rawInput, handler, { reportInternal: logInternal })
  })
}

/** Registers every channel of the contract; the IpcHandlers type makes a missing one a compile error. */
export function handleAll(handlers: IpcHandlers): void {
  for (const channel of ipcChannels) register(channel, handlers)
}

function register<C extends IpcChannel>(channel: C, handlers: IpcHandlers): void {
  handle(channel, handlers[channel])
}

// Main has no shared redacting logger yet; until it does, handlers must not throw errors that
// carry secrets in their message (wrap them in an AppError instead).
function logInternal(message: string, err: unknown): void {
  console.error(`[ipc] ${message}`, err)
}

function isFromOurRenderer(event: IpcMainInvokeEvent): boolean {
  const frame = event.senderFrame
  // null when the frame navigated away or was destroyed before the message was handled.
  if (!frame || frame.parent !== null) return false
  return isTrustedSenderUrl(frame.url, rendererUrl())
}
