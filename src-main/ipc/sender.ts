/** Which pages may call main: our renderer's top frame, nothing else. */

/**
 * Whether a frame URL belongs to our renderer: same origin as the dev server, or the very
 * index.html we loaded from disk.
 */
export function isTrustedSenderUrl(frameUrl: string, rendererUrl: string): boolean {
  let frame: URL
  let renderer: URL
  try {
    frame = new URL(frameUrl)
    renderer = new URL(rendererUrl)
  } catch {
    return false
  }
  if (renderer.protocol === 'file:') {
    return frame.protocol === 'file:' && frame.pathname === renderer.pathname
  }
  return frame.origin === renderer.origin
}

/**
 * Whether a call comes from our renderer: its top frame (never an iframe inside it), showing our
 * page. `frame` is null when it navigated away or was destroyed before the call was handled.
 */
export function isTrustedSender(
  frame: { url: string; parent: unknown } | null,
  rendererUrl: string,
): boolean {
  if (!frame || frame.parent !== null) return false
  return isTrustedSenderUrl(frame.url, rendererUrl)
}
