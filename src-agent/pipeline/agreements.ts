import { and, eq } from 'drizzle-orm'
import type { Tx } from '../../db/client.js'
import { connectorAgreements } from '../../db/schema/index.js'
import { ConfigError } from '../../shared/errors.js'
import type { AnyConnector } from '../connectors/interface.js'

/** Throws, naming the command that fixes it, unless the tenant accepted the connector's terms. */
export async function requireAgreement(
  tx: Tx,
  tenantId: string,
  connector: AnyConnector,
): Promise<void> {
  const required = connector.requiredAgreement
  if (!required) return
  const [accepted] = await tx
    .select({ id: connectorAgreements.id })
    .from(connectorAgreements)
    .where(
      and(
        eq(connectorAgreements.tenantId, tenantId),
        eq(connectorAgreements.connector, connector.id),
        eq(connectorAgreements.agreement, required.id),
      ),
    )
  if (accepted) return
  throw new ConfigError(
    'config_invalid',
    `${connector.name} reads nothing until an admin of tenant "${tenantId}" accepts the ${required.name}: ${required.acceptCommand.replace('<tenant>', tenantId)}`,
  )
}
