/** `gtm-agent keys rotate`: re-encrypts stored credentials with the current key. */
import type { Command } from 'commander'
import { loadKeyring } from '../secrets/crypto.js'
import { rotateKeys } from '../services/keys.js'
import { plural, withDatabase, type CliContext } from './context.js'

/** Adds `keys rotate` to the program. */
export function registerKeyCommands(program: Command, ctx: CliContext): void {
  program
    .command('keys')
    .description('manage the credential encryption keys')
    .command('rotate')
    .description(
      're-encrypt stored credentials with CONNECTOR_ENCRYPTION_KEY (older keys in CONNECTOR_ENCRYPTION_KEYS_PREVIOUS)',
    )
    .option('--tenant <id...>', 'only these tenants (default: all)')
    .action(async (opts: { tenant?: string[] }) => {
      const keyring = loadKeyring(ctx.env)
      await withDatabase(ctx, async (handle) => {
        const deps = { handle, keyring, log: ctx.log, userId: ctx.userId }
        const result = await rotateKeys(deps, opts.tenant ? { tenantIds: opts.tenant } : {})
        ctx.out.line(
          `Re-encrypted ${plural(result.rotated, 'credential')} with key ${result.toKeyId}; ` +
            `${result.alreadyCurrent} already used it (${plural(result.tenants, 'tenant')} checked).`,
        )
      })
    })
}
