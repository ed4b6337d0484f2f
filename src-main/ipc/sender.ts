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
