/** `gtm-agent o365 …`: what only Microsoft 365 needs. */
import type { Command } from 'commander'
import { loadConnectorModules } from '../config.js'
import { connectorRegistry } from '../connectors/registry.js'
import { acceptAgreement } from '../services/agreements.js'
import { withDatabase, type CliContext } from './context.js'

export function registerO365Commands(program: Command, ctx: CliContext): void {
  const o365 = program.command('o365').description('Microsoft 365 settings of a tenant')
  o365
    .command('accept-dpa')
    .description(
      'accept the data-processing terms for Microsoft 365 on behalf of the tenant (syncs read no mailbox before)',
    )
    .requiredOption('--tenant <id>', 'tenant id')
    .action(async (opts: { tenant: string }) => {
      await loadConnectorModules(ctx.env)
      await withDatabase(ctx, async ({ db }) => {
        const result = await acceptAgreement(db, {
          tenantId: opts.tenant,
          connectorType: 'o365',
          registry: connectorRegistry,
          userId: ctx.userId,
        })
        ctx.out.line(
          result.already
            ? `Tenant "${opts.tenant}" accepted the Microsoft 365 data-processing terms on ${result.acceptedAt.toISOString()}.`
            : `Accepted the Microsoft 365 data-processing terms for tenant "${opts.tenant}".`,
        )
      })
    })
}
