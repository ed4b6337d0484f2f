import { randomBytes } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { ConfigError, CryptoError } from '../../shared/errors.js'
import {
  decryptCredentials,
  decryptSecret,
  encryptCredentials,
  encryptSecret,
  keyringFromHex,
  loadKeyring,
  needsRotation,
  reencrypt,
} from '../../src-agent/secrets/crypto.js'

const KEY_A = 'a'.repeat(16) + randomBytes(24).toString('hex')
const KEY_B = 'b'.repeat(16) + randomBytes(24).toString('hex')
const scope = { tenantId: 'tenant-1', connectorType: 'salesforce' }
const PLAINTEXT = 'refresh-token-PLAINTEXT-1234567890'

/** The thrown value, asserting something was thrown. */
function thrown(fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  throw new Error('expected a throw')
}

/** Replaces one dot-separated part of an envelope. */
function withPart(envelope: string, index: number, change: (part: string) => string): string {
  const parts = envelope.split('.')
  parts[index] = change(parts[index] ?? '')
  return parts.join('.')
}

/** Flips one bit in a base64url part, keeping its length. */
function flipBit(part: string): string {
  const bytes = Buffer.from(part, 'base64url')
  bytes[0] = (bytes[0] ?? 0) ^ 1
  return bytes.toString('base64url')
}

describe('encryptSecret / decryptSecret', () => {
  const keyring = keyringFromHex(KEY_A)

  it('round-trips, including empty and non-ASCII text', () => {
    for (const text of [PLAINTEXT, '', 'pässwörd ✓ 密码']) {
      expect(decryptSecret(keyring, encryptSecret(keyring, text, scope), scope)).toBe(text)
    }
  })

  it('produces a self-describing envelope without the plaintext or the key', () => {
    const envelope = encryptSecret(keyring, PLAINTEXT, scope)
    expect(envelope).toMatch(/^gcm1\.[0-9a-f]{16}\.[\w-]{16}\.[\w-]{22}\.[\w-]+$/)
    expect(envelope.split('.')[1]).toBe(keyring.currentKeyId)
    expect(envelope).not.toContain('PLAINTEXT')
    expect(envelope).not.toContain(Buffer.from(PLAINTEXT).toString('base64url').slice(0, 12))
    expect(envelope).not.toContain(KEY_A)
    expect(JSON.stringify(keyring)).not.toContain(KEY_A)
  })

  it('uses a random IV: two encryptions differ', () => {
    const first = encryptSecret(keyring, PLAINTEXT, scope)
    const second = encryptSecret(keyring, PLAINTEXT, scope)
    expect(first).not.toBe(second)
    expect(first.split('.')[2]).not.toBe(second.split('.')[2])
  })

  it('rejects tampering with any part, never returning garbage', () => {
    const envelope = encryptSecret(keyring, PLAINTEXT, scope)
    const altered = [
      withPart(envelope, 2, flipBit), // iv
      withPart(envelope, 3, flipBit), // tag
      withPart(envelope, 4, flipBit), // ciphertext
      withPart(envelope, 4, (part) => part.slice(0, -2)), // truncated ciphertext
    ]
    for (const bad of altered) {
      const err = thrown(() => decryptSecret(keyring, bad, scope))
      expect(err).toBeInstanceOf(CryptoError)
      expect((err as CryptoError).code).toBe('decryption_failed')
      expect((err as CryptoError).message).toBe(
        'Stored credentials for salesforce (tenant tenant-1) could not be decrypted: the ciphertext was altered or belongs to another tenant or connector. Reconnect the connector.',
      )
    }
  })

  it('names an unknown key id and the variables to set', () => {
    const envelope = encryptSecret(keyring, PLAINTEXT, scope)
    const bad = withPart(envelope, 1, () => '0123456789abcdef')
    expect(() => decryptSecret(keyring, bad, scope)).toThrow(
      'Stored credentials were encrypted with key 0123456789abcdef, which is not CONNECTOR_ENCRYPTION_KEY or one of CONNECTOR_ENCRYPTION_KEYS_PREVIOUS. Set the key they were encrypted with.',
    )
  })

  it('rejects malformed envelopes with a clear error', () => {
    const envelope = encryptSecret(keyring, PLAINTEXT, scope)
    const malformed = [
      '',
      'not an envelope',
      envelope.replace(/^gcm1/, 'gcm2'),
      envelope.split('.').slice(0, 4).join('.'),
      `${envelope}.extra`,
      withPart(envelope, 1, (part) => part.toUpperCase()),
      withPart(envelope, 2, (part) => part.slice(0, -1)), // IV of the wrong length
      withPart(envelope, 3, (part) => `${part}AA`), // tag of the wrong length
      withPart(envelope, 4, (part) => `${part}!`), // not base64url
    ]
    for (const bad of malformed) {
      const err = thrown(() => decryptSecret(keyring, bad, scope))
      expect(err).toBeInstanceOf(CryptoError)
      expect((err as CryptoError).code).toBe('decryption_failed')
      expect((err as CryptoError).message).toMatch(/not in the expected encrypted format/)
      expect((err as CryptoError).message).toContain('salesforce (tenant tenant-1)')
    }
  })

  it('fails with a different key of the same id space', () => {
    const envelope = encryptSecret(keyring, PLAINTEXT, scope)
    const other = keyringFromHex(KEY_B)
    expect(() => decryptSecret(other, envelope, scope)).toThrow(/encrypted with key/)
  })

  it('fails authentication with wrong key material under the same key id', () => {
    // Forge an envelope whose key id names KEY_A but was encrypted with KEY_B.
    const forged = withPart(
      encryptSecret(keyringFromHex(KEY_B), PLAINTEXT, scope),
      1,
      () => keyring.currentKeyId,
    )
    expect(() => decryptSecret(keyring, forged, scope)).toThrow(/altered or belongs to another/)
  })

  it('binds the ciphertext to its tenant and connector', () => {
    const envelope = encryptSecret(keyring, PLAINTEXT, scope)
    for (const moved of [
      { tenantId: 'tenant-2', connectorType: 'salesforce' },
      { tenantId: 'tenant-1', connectorType: 'hubspot' },
      // Not confusable by shifting characters between the two fields.
      { tenantId: 'tenant-1sales', connectorType: 'force' },
    ]) {
      expect(() => decryptSecret(keyring, envelope, moved)).toThrow(
        `Stored credentials for ${moved.connectorType} (tenant ${moved.tenantId}) could not be decrypted`,
      )
    }
  })
})

describe('credentials', () => {
  const keyring = keyringFromHex(KEY_A)

  it('round-trips a credentials object', () => {
    const credentials = { accessToken: 'at-123456', expiresAt: 1700000000, scopes: ['api'] }
    const envelope = encryptCredentials(keyring, credentials, scope)
    expect(decryptCredentials(keyring, envelope, scope)).toEqual(credentials)
  })

  it('rejects a decrypted value that is not a plain object', () => {
    for (const json of ['[1,2]', 'null', '"text"', '{not json']) {
      const envelope = encryptSecret(keyring, json, scope)
      expect(() => decryptCredentials(keyring, envelope, scope)).toThrow(/not a JSON object/)
    }
  })
})

describe('rotation', () => {
  it('decrypts with a previous key and re-encrypts with the current one', () => {
    const onlyA = keyringFromHex(KEY_A)
    const rotated = keyringFromHex(KEY_B, [KEY_A])
    const onlyB = keyringFromHex(KEY_B)
    const oldEnvelope = encryptSecret(onlyA, PLAINTEXT, scope)

    expect(rotated.currentKeyId).toBe(onlyB.currentKeyId)
    expect(rotated.has(onlyA.currentKeyId)).toBe(true)
    expect(needsRotation(rotated, oldEnvelope)).toBe(true)
    expect(decryptSecret(rotated, oldEnvelope, scope)).toBe(PLAINTEXT)

    const newEnvelope = reencrypt(rotated, oldEnvelope, scope)
    expect(newEnvelope.split('.')[1]).toBe(onlyB.currentKeyId)
    expect(needsRotation(rotated, newEnvelope)).toBe(false)
    expect(decryptSecret(onlyB, newEnvelope, scope)).toBe(PLAINTEXT)
    expect(() => decryptSecret(onlyB, oldEnvelope, scope)).toThrow(/encrypted with key/)
  })

  it('loads previous keys from CONNECTOR_ENCRYPTION_KEYS_PREVIOUS', () => {
    const keyring = loadKeyring({
      CONNECTOR_ENCRYPTION_KEY: KEY_B,
      CONNECTOR_ENCRYPTION_KEYS_PREVIOUS: ` ${KEY_A} ,`,
    })
    const envelope = encryptSecret(keyringFromHex(KEY_A), PLAINTEXT, scope)
    expect(decryptSecret(keyring, envelope, scope)).toBe(PLAINTEXT)
  })
})

describe('loadKeyring errors', () => {
  function configError(env: NodeJS.ProcessEnv): ConfigError {
    const err = thrown(() => loadKeyring(env))
    expect(err).toBeInstanceOf(ConfigError)
    return err as ConfigError
  }

  it('explains a missing key', () => {
    for (const env of [{}, { CONNECTOR_ENCRYPTION_KEY: '  ' }]) {
      const err = configError(env)
      expect(err.code).toBe('encryption_key_missing')
      expect(err.message).toBe(
        'CONNECTOR_ENCRYPTION_KEY is not set. Generate one with `openssl rand -hex 32` and set it in the environment.',
      )
    }
  })

  it('explains a short, long or non-hex key without echoing it', () => {
    const badValues = [
      'deadbeefcafe1234',
      `${KEY_A}00`,
      `${KEY_A.slice(0, 60)}zzzz`,
      'my-super-secret-passphrase-that-is-not-hex-at-all-but-long-enough',
    ]
    for (const bad of badValues) {
      const err = configError({ CONNECTOR_ENCRYPTION_KEY: bad })
      expect(err.code).toBe('encryption_key_invalid')
      expect(err.message).toContain('CONNECTOR_ENCRYPTION_KEY must be 64 hexadecimal characters')
      expect(err.message).toContain('(32 bytes)')
      expect(err.message).toContain('`openssl rand -hex 32`')
      expect(err.message).not.toContain(bad)
      expect(err.message).not.toContain(bad.slice(0, 8))
    }
  })

  it('names CONNECTOR_ENCRYPTION_KEYS_PREVIOUS and the bad entry position', () => {
    const bad = 'c0ffee'
    const err = configError({
      CONNECTOR_ENCRYPTION_KEY: KEY_B,
      CONNECTOR_ENCRYPTION_KEYS_PREVIOUS: `${KEY_A},${bad}`,
    })
    expect(err.code).toBe('encryption_key_invalid')
    expect(err.message).toContain('CONNECTOR_ENCRYPTION_KEYS_PREVIOUS entry 2')
    expect(err.message).toContain('`openssl rand -hex 32`')
    expect(err.message).not.toContain(bad)
  })

  it('derives the key id from the key bytes, not its spelling', () => {
    expect(keyringFromHex(KEY_A.toUpperCase()).currentKeyId).toBe(
      keyringFromHex(KEY_A).currentKeyId,
    )
    expect(keyringFromHex(KEY_A).currentKeyId).toMatch(/^[0-9a-f]{16}$/)
    expect(keyringFromHex(KEY_A).currentKeyId).not.toBe(KEY_A.slice(0, 16))
  })
})
