/**
 * Encryption of connector credentials at rest: AES-256-GCM with keys from the environment.
 *
 * Envelope: `gcm1.<keyId>.<iv>.<tag>.<ciphertext>` (base64url parts). The key id is a fingerprint
 * (first 16 hex chars of SHA-256 over the key bytes), so an envelope says which key it needs
 * without revealing it. The associated data is JSON.stringify(['gcm1', tenantId, connectorType]):
 * a ciphertext copied to another tenant's row or another connector fails authentication.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto'
import { ConfigError, CryptoError } from '../../shared/errors.js'
import { isSensitiveKey, registerSecret } from '../../shared/redact.js'

/** The keys credentials can be decrypted with; new encryptions use the current one. */
export interface Keyring {
  /** Fingerprint of the key new envelopes are encrypted with. */
  readonly currentKeyId: string
  /** True when this keyring holds the key with that fingerprint. */
  has(keyId: string): boolean
}

/** Who the ciphertext belongs to. Bound into the ciphertext as associated data. */
export interface SecretScope {
  tenantId: string
  connectorType: string
}

/** Name of the variable holding the current key. */
export const ENCRYPTION_KEY_ENV = 'CONNECTOR_ENCRYPTION_KEY'
/** Name of the variable holding older keys (comma-separated) still accepted for decryption. */
export const PREVIOUS_KEYS_ENV = 'CONNECTOR_ENCRYPTION_KEYS_PREVIOUS'

/** The keyring from CONNECTOR_ENCRYPTION_KEY and CONNECTOR_ENCRYPTION_KEYS_PREVIOUS. */
export function loadKeyring(env: NodeJS.ProcessEnv = process.env): Keyring {
  const current = env[ENCRYPTION_KEY_ENV]
  if (current === undefined || current.trim() === '') {
    throw new ConfigError(
      'encryption_key_missing',
      `${ENCRYPTION_KEY_ENV} is not set. Generate one with \`${GENERATE}\` and set it in the environment.`,
    )
  }
  const previous = (env[PREVIOUS_KEYS_ENV] ?? '').split(',').flatMap((hex, index) =>
    // Blank entries (a trailing comma, an empty variable) are not keys; skip them.
    hex.trim() === '' ? [] : [{ hex, label: `${PREVIOUS_KEYS_ENV} entry ${index + 1}` }],
  )
  return buildKeyring({ hex: current, label: ENCRYPTION_KEY_ENV }, previous)
}

/** A keyring from hex keys held elsewhere (tests, the desktop keychain). */
export function keyringFromHex(current: string, previous: string[] = []): Keyring {
  return buildKeyring(
    { hex: current, label: 'The encryption key' },
    previous.map((hex, index) => ({ hex, label: `Previous encryption key ${index + 1}` })),
  )
}

/** Encrypts `plaintext` with the current key, bound to the tenant and connector. */
export function encryptSecret(keyring: Keyring, plaintext: string, scope: SecretScope): string {
  const keyId = keyring.currentKeyId
  const key = keyBytes(keyring, keyId)
  const iv = randomBytes(IV_BYTES)
  const cipher = createCipheriv(ALGORITHM, key, iv, { authTagLength: TAG_BYTES })
  cipher.setAAD(associatedData(scope))
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
  const tag = cipher.getAuthTag()
  return [VERSION, keyId, b64(iv), b64(tag), b64(ciphertext)].join('.')
}

/** Decrypts an envelope made by `encryptSecret` for the same tenant and connector, or throws. */
export function decryptSecret(keyring: Keyring, envelope: string, scope: SecretScope): string {
  const parsed = parseEnvelope(envelope, scope)
  if (!keyring.has(parsed.keyId)) {
    throw new CryptoError(
      'decryption_failed',
      `Stored credentials were encrypted with key ${parsed.keyId}, which is not ${ENCRYPTION_KEY_ENV} or one of ${PREVIOUS_KEYS_ENV}. Set the key they were encrypted with.`,
    )
  }
  const decipher = createDecipheriv(ALGORITHM, keyBytes(keyring, parsed.keyId), parsed.iv, {
    authTagLength: TAG_BYTES,
  })
  decipher.setAAD(associatedData(scope))
  decipher.setAuthTag(parsed.tag)
  try {
    // final() verifies the tag: nothing from update() is returned unless it passes.
    return Buffer.concat([decipher.update(parsed.ciphertext), decipher.final()]).toString('utf8')
  } catch (cause) {
    throw new CryptoError(
      'decryption_failed',
      `Stored credentials for ${scope.connectorType} (tenant ${scope.tenantId}) could not be decrypted: the ciphertext was altered or belongs to another tenant or connector. Reconnect the connector.`,
      { cause },
    )
  }
}

/** Encrypts a credentials object as JSON. Its secret values are also hidden from logs from now on. */
export function encryptCredentials(
  keyring: Keyring,
  credentials: Record<string, unknown>,
  scope: SecretScope,
): string {
  registerSensitiveValues(credentials)
  return encryptSecret(keyring, JSON.stringify(credentials), scope)
}

/** Decrypts a credentials object; throws unless it is a plain JSON object. */
export function decryptCredentials(
  keyring: Keyring,
  envelope: string,
  scope: SecretScope,
): Record<string, unknown> {
  const json = decryptSecret(keyring, envelope, scope)
  let value: unknown
  try {
    value = JSON.parse(json)
  } catch {
    value = undefined
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CryptoError(
      'decryption_failed',
      `Stored credentials for ${scope.connectorType} (tenant ${scope.tenantId}) decrypted, but they are not a JSON object. Reconnect the connector.`,
    )
  }
  const credentials = value as Record<string, unknown>
  registerSensitiveValues(credentials)
  return credentials
}

/** True when the envelope was not encrypted with the current key (re-encrypt it). */
export function needsRotation(keyring: Keyring, envelope: string): boolean {
  return parseEnvelope(envelope, undefined).keyId !== keyring.currentKeyId
}

/** The same secret encrypted with the current key, whichever keyring key it was encrypted with. */
export function reencrypt(keyring: Keyring, envelope: string, scope: SecretScope): string {
  return encryptSecret(keyring, decryptSecret(keyring, envelope, scope), scope)
}

// --- implementation ---

const ALGORITHM = 'aes-256-gcm'
const VERSION = 'gcm1'
const KEY_BYTES = 32
const IV_BYTES = 12
const TAG_BYTES = 16
const GENERATE = 'openssl rand -hex 32'
const KEY_ID = /^[0-9a-f]{16}$/
const BASE64URL = /^[A-Za-z0-9_-]*$/

/** Raw key bytes per keyring, out of reach of callers, JSON.stringify and util.inspect. */
const keyMaterial = new WeakMap<Keyring, ReadonlyMap<string, Buffer>>()

interface KeySource {
  hex: string
  label: string
}

interface Envelope {
  keyId: string
  iv: Buffer
  tag: Buffer
  ciphertext: Buffer
}

function buildKeyring(current: KeySource, previous: KeySource[]): Keyring {
  const keys = new Map<string, Buffer>()
  const currentKeyId = addKey(keys, current)
  for (const source of previous) addKey(keys, source)
  const keyring: Keyring = Object.freeze({
    currentKeyId,
    has: (keyId: string) => keys.has(keyId),
  })
  keyMaterial.set(keyring, keys)
  return keyring
}

function addKey(keys: Map<string, Buffer>, source: KeySource): string {
  const hex = source.hex.trim()
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) {
    // Never echo the value: describe what is wrong with it instead.
    const problem = /^[0-9a-fA-F]*$/.test(hex)
      ? `it is ${hex.length} characters long`
      : 'it contains characters other than 0-9 and a-f'
    throw new ConfigError(
      'encryption_key_invalid',
      `${source.label} must be 64 hexadecimal characters (32 bytes), but ${problem}. Generate a key with \`${GENERATE}\`.`,
    )
  }
  const key = Buffer.from(hex, 'hex')
  // Keep the key out of log lines even if someone logs the environment.
  registerSecret(hex)
  const keyId = fingerprint(key)
  keys.set(keyId, key)
  return keyId
}

function fingerprint(key: Buffer): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 16)
}

function keyBytes(keyring: Keyring, keyId: string): Buffer {
  const key = keyMaterial.get(keyring)?.get(keyId)
  if (key === undefined || key.length !== KEY_BYTES) {
    throw new CryptoError(
      'internal',
      'The keyring was not created by loadKeyring or keyringFromHex, or lacks its current key.',
    )
  }
  return key
}

function associatedData(scope: SecretScope): Buffer {
  if (scope.tenantId === '' || scope.connectorType === '') {
    // An empty scope would let any tenant's row decrypt the ciphertext: a programming error.
    throw new CryptoError(
      'tenant_required',
      'Credentials can only be encrypted or decrypted for a tenant id and connector type.',
    )
  }
  return Buffer.from(JSON.stringify([VERSION, scope.tenantId, scope.connectorType]), 'utf8')
}

function parseEnvelope(envelope: string, scope: SecretScope | undefined): Envelope {
  const parts = typeof envelope === 'string' ? envelope.split('.') : []
  const [version, keyId, iv, tag, ciphertext] = parts
  const decodedIv = decode(iv)
  const decodedTag = decode(tag)
  const decodedCiphertext = decode(ciphertext)
  if (
    parts.length !== 5 ||
    version !== VERSION ||
    keyId === undefined ||
    !KEY_ID.test(keyId) ||
    decodedIv?.length !== IV_BYTES ||
    decodedTag?.length !== TAG_BYTES ||
    decodedCiphertext === undefined
  ) {
    const whose =
      scope === undefined
        ? 'Stored credentials'
        : `Stored credentials for ${scope.connectorType} (tenant ${scope.tenantId})`
    throw new CryptoError(
      'decryption_failed',
      `${whose} are not in the expected encrypted format (${VERSION}.<key id>.<iv>.<tag>.<ciphertext>); they were truncated or edited. Reconnect the connector.`,
    )
  }
  return { keyId, iv: decodedIv, tag: decodedTag, ciphertext: decodedCiphertext }
}

/** Strict base64url: Buffer.from silently skips bad characters, so check and round-trip first. */
function decode(part: string | undefined): Buffer | undefined {
  if (part === undefined || !BASE64URL.test(part)) return undefined
  const bytes = Buffer.from(part, 'base64url')
  return b64(bytes) === part ? bytes : undefined
}

function b64(bytes: Buffer): string {
  return bytes.toString('base64url')
}

/** Registers string values under secret-looking keys (refresh_token, client_secret...). */
function registerSensitiveValues(value: unknown, depth = 0): void {
  if (typeof value !== 'object' || value === null || depth > 5) return
  for (const [key, child] of Object.entries(value)) {
    if (typeof child === 'string' && isSensitiveKey(key)) registerSecret(child)
    else registerSensitiveValues(child, depth + 1)
  }
}
