/** Re-encrypting stored credentials with the current CONNECTOR_ENCRYPTION_KEY. */
import { eq, isNotNull, sql } from 'drizzle-orm'
import type { DbHandle } from '../../db/client.js'
import { toDbError } from '../../db/errors.js'
import { connectors } from '../../db/schema/index.js'
import { withTenant } from '../../db/tenant.js'
import { AppError, CryptoError, describeError } from '../../shared/errors.js'
import { recordAudit } from '../audit/audit.js'
import type { Logger } from '../logging/logger.js'
import { needsRotation, reencrypt, type Keyring } from '../secrets/crypto.js'
import { listTenants } from '../pipeline/tenants.js'

export interface RotateKeysDeps {
  handle: DbHandle
  keyring: Keyring
  log: Logger
  userId: string
}

export interface RotateKeysOptions {
  /** Only these tenants (default: every tenant in the directory). */
  tenantIds?: readonly string[]
}

export interface RotateKeysResult {
  /** Credentials re-encrypted with the current key. */
  rotated: number
  /** Credentials that were already encrypted with it. */
  alreadyCurrent: number
  /** Tenants examined. */
  tenants: number
  toKeyId: string
}

/**
 * Re-encrypts every tenant's stored credentials that use an older key, one transaction per
 * tenant: a credential no known key decrypts stops the rotation, and that tenant keeps all its
 * credentials as they were (tenants before it stay rotated; running again finishes the rest).
 */
export async function rotateKeys(
  deps: RotateKeysDeps,
  options: RotateKeysOptions = {},
): Promise<RotateKeysResult> {
  const toKeyId = deps.keyring.currentKeyId
  const result: RotateKeysResult = { rotated: 0, alreadyCurrent: 0, tenants: 0, toKeyId }
  for (const tenantId of await tenantsToRotate(deps.handle, options)) {
    const counts = await rotateTenant(deps, tenantId)
    result.rotated += counts.rotated
    result.alreadyCurrent += counts.alreadyCurrent
    result.tenants += 1
    if (counts.rotated > 0) {
      deps.log.info({ tenantId, rotated: counts.rotated, toKeyId }, 'credentials re-encrypted')
    }
  }
  return result
}

// --- implementation ---

async function tenantsToRotate(handle: DbHandle, options: RotateKeysOptions): Promise<string[]> {
  const known = (await listTenants(handle.db)).map((t) => t.id)
  if (!options.tenantIds) return known
  const unknown = options.tenantIds.filter((id) => !known.includes(id))
  if (unknown.length > 0) {
    throw new AppError(
      'tenant_unknown',
      `Tenant "${unknown[0]}" does not exist; nothing was rotated.`,
    )
  }
  return [...new Set(options.tenantIds)]
}

async function rotateTenant(
  deps: RotateKeysDeps,
  tenantId: string,
): Promise<{ rotated: number; alreadyCurrent: number }> {
  const { keyring } = deps
  try {
    return await withTenant(deps.handle.db, tenantId, async (tx) => {
      // FOR UPDATE: a concurrent `connect` waits instead of having its new credentials overwritten.
      const rows = await tx
        .select({
          id: connectors.id,
          type: connectors.type,
          envelope: connectors.encryptedCredentials,
        })
        .from(connectors)
        .where(isNotNull(connectors.encryptedCredentials))
        .orderBy(connectors.type)
        .for('update')
      const fromKeyIds = new Set<string>()
      let rotated = 0
      let alreadyCurrent = 0
      for (const row of rows) {
        if (row.envelope === null) continue
        const scope = { tenantId, connectorType: row.type }
        let next: string
        try {
          if (!needsRotation(keyring, row.envelope)) {
            alreadyCurrent += 1
            continue
          }
          next = reencrypt(keyring, row.envelope, scope)
        } catch (cause) {
          throw new CryptoError(
            'decryption_failed',
            `Key rotation stopped at tenant "${tenantId}", connector ${row.type}: ${describeError(cause)} Nothing was changed for this tenant.`,
            { cause },
          )
        }
        fromKeyIds.add(envelopeKeyId(row.envelope))
        await tx
          .update(connectors)
          .set({ encryptedCredentials: next, updatedAt: sql`now()` })
          .where(eq(connectors.id, row.id))
        rotated += 1
      }
      if (rotated > 0) {
        await recordAudit(tx, {
          tenantId,
          userId: deps.userId,
          action: 'keys.rotate',
          resource: 'connector',
          metadata: {
            connectors: rotated,
            fromKeyIds: [...fromKeyIds].sort(),
            toKeyId: keyring.currentKeyId,
          },
        })
      }
      return { rotated, alreadyCurrent }
    })
  } catch (err) {
    if (err instanceof AppError) throw err
    throw toDbError(err, `re-encrypting the credentials of tenant "${tenantId}"`)
  }
}

/**
 * The key fingerprint of an envelope (`gcm1.<keyId>.<iv>.<tag>.<ciphertext>`, see
 * secrets/crypto.ts). Only called after needsRotation parsed the envelope successfully.
 */
function envelopeKeyId(envelope: string): string {
  return envelope.split('.')[1] ?? 'unknown'
}
