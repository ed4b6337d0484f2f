/** Accepting a connector's terms for a tenant (audited; kept across reconnects). */
import { sql } from 'drizzle-orm'
import type { Db } from '../../db/client.js'
import { connectorAgreements } from '../../db/schema/index.js'
import { withTenant } from '../../db/tenant.js'
import { ConfigError } from '../../shared/errors.js'
import { recordAudit } from '../audit/audit.js'
import type { ConnectorRegistry } from '../connectors/registry.js'
import { requireTenant } from '../pipeline/tenants.js'

export async function acceptAgreement(
  db: Db,
  input: { tenantId: string; connectorType: string; registry: ConnectorRegistry; userId: string },
): Promise<{ acceptedAt: Date; already: boolean }> {
  const connector = input.registry.get(input.connectorType)
  const required = connector.requiredAgreement
  if (!required) {
    throw new ConfigError('config_invalid', `${connector.name} has no terms to accept.`)
  }
  return withTenant(db, input.tenantId, async (tx) => {
    await requireTenant(tx, input.tenantId)
    const [row] = await tx
      .insert(connectorAgreements)
      .values({
        tenantId: input.tenantId,
        connector: connector.id,
        agreement: required.id,
        acceptedBy: input.userId,
      })
      .onConflictDoNothing()
      .returning({ acceptedAt: connectorAgreements.acceptedAt })
    if (!row) {
      const [existing] = await tx
        .select({ acceptedAt: connectorAgreements.acceptedAt })
        .from(connectorAgreements)
        .where(
          sql`${connectorAgreements.tenantId} = ${input.tenantId} and ${connectorAgreements.connector} = ${connector.id} and ${connectorAgreements.agreement} = ${required.id}`,
        )
      return { acceptedAt: existing!.acceptedAt, already: true }
    }
    await recordAudit(tx, {
      tenantId: input.tenantId,
      userId: input.userId,
      action: 'agreement.accept',
      resource: 'connector_agreement',
      resourceId: `${connector.id}:${required.id}`,
      after: { connector: connector.id, agreement: required.id },
    })
    return { acceptedAt: row.acceptedAt, already: false }
  })
}
