/**
 * Which links main opens in the system browser: https only (a vendor's sign-in page, docs), and
 * never one carrying a user name or password. Anything else is refused with the reason.
 */
export function checkExternalUrl(
  raw: string,
): { ok: true; url: string } | { ok: false; reason: string } {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return { ok: false, reason: 'it is not a valid URL' }
  }
  if (url.protocol !== 'https:')
    return { ok: false, reason: `${url.protocol} links are not opened` }
  if (url.username || url.password) return { ok: false, reason: 'it carries credentials' }
  return { ok: true, url: url.toString() }
}
