/** `gtm-agent tenants create|list`: the tenant directory. */
import type { Command } from 'commander'
import { listTenants } from '../pipeline/tenants.js'
import { createTenant } from '../services/tenants.js'
import { pick, withDatabase, type CliContext } from './context.js'

/** Adds `tenants create <id>` and `tenants list` to the program. */
export function registerTenantCommands(program: Command, ctx: CliContext): void {
  const tenants = program.command('tenants').description('create and list tenants')
  tenants
    .command('create <id>')
    .description('create a tenant (id: lower-case letters, digits, "-" and "_")')
    .requiredOption('--name <name>', 'display name')
    .option('--slug <slug>', 'unique short name (defaults to the id)')
    .action((id: string, opts: { name: string; slug?: string }) =>
      withDatabase(ctx, async ({ db }) => {
        const tenant = await createTenant(db, {
          id,
          name: opts.name,
          userId: ctx.userId,
          ...pick(opts, 'slug'),
        })
        ctx.out.line(`Created tenant "${tenant.id}" (${tenant.name}).`)
      }),
    )
  tenants
    .command('list')
    .description('list every tenant')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }) =>
      withDatabase(ctx, async ({ db }) => {
        const rows = await listTenants(db)
        if (opts.json) return ctx.out.json(rows)
        if (rows.length === 0)
          return ctx.out.line(
            'No tenants yet. Create one with: gtm-agent tenants create <id> --name "<name>"',
          )
        ctx.out.table(
          ['ID', 'NAME', 'SLUG', 'CREATED'],
          rows.map((t) => [t.id, t.name, t.slug, t.createdAt.toISOString()]),
        )
      }),
    )
}
