/**
 * Redaction of secrets from anything that leaves the process as text: log lines, audit-log
 * before/after snapshots, error messages shown to admins. Pure apart from reading the registry
 * of known secret values, which callers fill with `registerSecret`.
 */
import { setOwn } from './own.js'

/** What a redacted value is replaced with. */
export const REDACTED = '[REDACTED]'

/** Deep copy of `value` with secrets removed: sensitive keys, token patterns, registered secrets. */
export function redact(value: unknown): unknown {
  return redactValue(value, new Set(), 0)
}

/** True when an object key names a secret (token, password, API key, cookie, signature...). */
export function isSensitiveKey(key: string): boolean {
  return SENSITIVE_KEY.test(key)
}

/** `s` with bearer/basic credentials, secret query parameters and registered secrets removed. */
export function scrubString(s: string): string {
  let out = s
  const registered = registeredSecretPattern()
  if (registered) out = out.replace(registered, REDACTED)
  out = out.replace(BEARER, `$1 ${REDACTED}`)
  out = out.replace(BASIC, (match: string, scheme: string, credential: string) =>
    looksLikeBasicCredential(credential) ? `${scheme} ${REDACTED}` : match,
  )
  out = out.replace(URL_PASSWORD, `$1${REDACTED}$3`)
  out = out.replace(ASSIGNMENT, `$1$2=${REDACTED}`)
  out = out.replace(JSON_MEMBER, `$1"${REDACTED}"`)
  return out
}

/**
 * Remembers a secret value (a token, a client secret) so that it is replaced wherever it appears,
 * whatever key or sentence it hides in. Values shorter than 6 characters are ignored: redacting
 * them would mangle ordinary words and numbers.
 */
export function registerSecret(value: string): void {
  if (typeof value !== 'string' || value.length < MIN_SECRET_LENGTH) return
  // Re-inserting moves the value to the newest end, so eviction drops the stalest secrets.
  registeredSecrets.delete(value)
  registeredSecrets.add(value)
  // Access tokens are refreshed hourly for every connector; cap the registry so a long-running
  // agent does not grow it (and the per-line regex) forever. The oldest ones have expired anyway.
  while (registeredSecrets.size > MAX_REGISTERED_SECRETS) {
    const oldest = registeredSecrets.values().next()
    if (oldest.done === true) break
    registeredSecrets.delete(oldest.value)
  }
  cachedSecretPattern = undefined
}

// --- implementation ---

const SENSITIVE_KEY =
  /token|secret|passw|api[-_]?key|authoriz|cookie|credential|private[-_]?key|signature|bearer/i

/** Keyword alternation used inside string patterns (same intent as SENSITIVE_KEY). */
const SENSITIVE_WORD =
  'token|secret|passw|api[-_]?key|authoriz|cookie|credential|private[-_]?key|signature|bearer'

/**
 * Token characters exclude quotes and backslashes on purpose: `scrubString` also runs over the
 * final serialized JSON line, and eating an escape or a closing quote would corrupt the line.
 */
const BEARER = /\b(Bearer)\s+[A-Za-z0-9\-._~+/]+=*/gi
const BASIC = /\b(Basic)\s+([A-Za-z0-9+/_-]{6,}={0,2})/gi
/** `scheme://user:password@host` (database URLs, proxies). */
const URL_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^\s:@/"'\\]+:)([^\s@/"'\\]+)(@)/gi
/** `access_token=...`, `client_secret=...`, `X-Amz-Signature=...`, `sig=...`, `key=...`, `code=...`. */
const ASSIGNMENT = new RegExp(
  `([?&;,\\s"'(]|^)((?:[\\w.-]*(?:${SENSITIVE_WORD})[\\w.-]*)|sig|key|code)=([^&\\s"'#;,)\\\\]+)`,
  'gi',
)
/** `"refresh_token": "..."` inside a string, e.g. a vendor response body quoted in an error. */
const JSON_MEMBER = new RegExp(
  `("[^"\\\\]*(?:${SENSITIVE_WORD})[^"\\\\]*"\\s*:\\s*)"(?:[^"\\\\]|\\\\.)*"`,
  'gi',
)

const MIN_SECRET_LENGTH = 6
const MAX_REGISTERED_SECRETS = 1000
/** Deeper than this is not log material; stops pathological objects (sockets) from exploding. */
const MAX_DEPTH = 20

const registeredSecrets = new Set<string>()
let cachedSecretPattern: RegExp | null | undefined

function registeredSecretPattern(): RegExp | null {
  if (cachedSecretPattern !== undefined) return cachedSecretPattern
  const forms = new Set<string>()
  for (const secret of registeredSecrets) {
    forms.add(secret)
    // The forms the value takes inside a JSON line and inside a URL.
    forms.add(JSON.stringify(secret).slice(1, -1))
    forms.add(encodeURIComponent(secret))
  }
  // Longest first, so a secret that contains another is replaced whole.
  const alternatives = [...forms].sort((a, b) => b.length - a.length).map(escapeRegExp)
  cachedSecretPattern = alternatives.length === 0 ? null : new RegExp(alternatives.join('|'), 'g')
  return cachedSecretPattern
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&')
}

/**
 * `Basic` followed by a word is often prose ("Basic authentication failed"); only treat it as a
 * credential when it looks like base64 of `user:password` or has base64-only characters.
 */
function looksLikeBasicCredential(candidate: string): boolean {
  if (/[0-9+/=]/.test(candidate)) return true
  // atob (Node and browsers alike) refuses a length of 4n+1; the last character then carries
  // no whole byte anyway.
  const usable = candidate.length % 4 === 1 ? candidate.slice(0, -1) : candidate
  try {
    return atob(usable).includes(':')
  } catch {
    return false
  }
}

function redactValue(value: unknown, ancestors: Set<object>, depth: number): unknown {
  if (typeof value === 'string') return scrubString(value)
  if (typeof value !== 'object' || value === null) return value
  if (ancestors.has(value)) return '[Circular]'
  if (depth >= MAX_DEPTH) return '[Truncated]'

  ancestors.add(value)
  try {
    if (value instanceof Error) return redactError(value, ancestors, depth)
    if (Array.isArray(value)) {
      return value.map((item: unknown) => redactValue(item, ancestors, depth + 1))
    }
    const toJSON: unknown = (value as { toJSON?: unknown }).toJSON
    if (typeof toJSON === 'function') {
      // Dates, Buffers, URLs: redact what JSON output would contain.
      try {
        return redactValue(toJSON.call(value), ancestors, depth + 1)
      } catch {
        return '[Unserializable]'
      }
    }
    const out: Record<string, unknown> = {}
    for (const [key, child] of Object.entries(value)) {
      // null/undefined say "absent", which is useful when debugging and reveals nothing.
      const copy =
        isSensitiveKey(key) && child !== null && child !== undefined
          ? REDACTED
          : redactValue(child, ancestors, depth + 1)
      setOwn(out, key, copy)
    }
    return out
  } finally {
    ancestors.delete(value)
  }
}

/** Errors keep only what an admin needs; stacks and vendor payloads stay out of logs. */
function redactError(err: Error, ancestors: Set<object>, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = { name: err.name, message: scrubString(err.message) }
  const code: unknown = (err as { code?: unknown }).code
  if (typeof code === 'string' || typeof code === 'number') out.code = code
  if (err.cause !== undefined) out.cause = redactValue(err.cause, ancestors, depth + 1)
  return out
}
