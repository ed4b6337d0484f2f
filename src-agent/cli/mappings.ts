/** `gtm-agent mappings get|set|reset`: how a connector's source fields map to ours, per tenant. */
import { Option, type Command } from 'commander'
import { entityTypes, type EntityType } from '../../shared/schemas.js'
import { loadConnectorModules } from '../config.js'
import { connectorRegistry } from '../connectors/registry.js'
import { getMappings, resetMappings, setMappings, type MappingView } from '../services/mappings.js'
import type { CliOutput } from './output.js'
import { pick, readJsonFile, withDatabase, type CliContext } from './context.js'

/** Adds `mappings get|set|reset <type>` to the program. */
export function registerMappingCommands(program: Command, ctx: CliContext): void {
  const mappings = program
    .command('mappings')
    .description('show or change how source fields map to canonical fields')
  const target = (command: Command): Command =>
    command
      .requiredOption('--tenant <id>', 'tenant id')
      .addOption(
        new Option('--entity <type>', 'entity type').choices(entityTypes).makeOptionMandatory(),
      )
      .option('--stream <id>', 'one stream only (its overrides win); every stream by default')
  type TargetOpts = { tenant: string; entity: EntityType; stream?: string }
  const targetOf = (type: string, opts: TargetOpts) => ({
    tenantId: opts.tenant,
    connectorType: type,
    entityType: opts.entity,
    ...pick(opts, 'stream'),
    registry: connectorRegistry,
  })

  target(mappings.command('get <type>').description('print the effective mappings as JSON')).action(
    async (type: string, opts: TargetOpts) => {
      await loadConnectorModules(ctx.env)
      await withDatabase(ctx, async ({ db }) =>
        printMappings(ctx.out, targetOf(type, opts), await getMappings(db, targetOf(type, opts))),
      )
    },
  )

  target(
    mappings.command('set <type>').description('replace the tenant’s overrides with a JSON file'),
  )
    .requiredOption(
      '--file <file>',
      'JSON list of { sourceField, targetField, transform, required? }',
    )
    .action(async (type: string, opts: TargetOpts & { file: string }) => {
      await loadConnectorModules(ctx.env)
      const mappingsJson = await readJsonFile(opts.file, 'mappings file')
      await withDatabase(ctx, async ({ db }) => {
        const input = { ...targetOf(type, opts), mappings: mappingsJson, userId: ctx.userId }
        printMappings(ctx.out, input, await setMappings(db, input))
      })
    })

  target(
    mappings
      .command('reset <type>')
      .description('drop the tenant’s overrides: the connector’s defaults apply'),
  ).action(async (type: string, opts: TargetOpts) => {
    await loadConnectorModules(ctx.env)
    await withDatabase(ctx, async ({ db }) => {
      const result = await resetMappings(db, { ...targetOf(type, opts), userId: ctx.userId })
      ctx.out.line(
        result.removed
          ? `Reset ${type} ${opts.entity} mappings of tenant "${opts.tenant}" to the connector's defaults.`
          : `${type} ${opts.entity} mappings of tenant "${opts.tenant}" had no overrides; the defaults apply.`,
      )
    })
  })
}

// --- implementation ---

function printMappings(
  out: CliOutput,
  target: { tenantId: string; connectorType: string; entityType: EntityType; stream?: string },
  view: MappingView,
): void {
  const overridden = new Set(view.overrides.map((m) => m.targetField))
  out.json({
    tenantId: target.tenantId,
    connectorType: target.connectorType,
    entityType: target.entityType,
    ...(target.stream !== undefined ? { stream: target.stream } : {}),
    mappings: view.effective.map((m) => ({ ...m, override: overridden.has(m.targetField) })),
  })
}
