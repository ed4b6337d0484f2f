/** `gtm-agent migrate`: applies the pending migrations and names them. */
import { readFileSync } from 'node:fs'
import path from 'node:path'
import type { Command } from 'commander'
import { migrateDatabase, migrationsFolder } from '../../db/migrate.js'
import { dataDir, locateDatabase } from '../config.js'
import { plural, type CliContext } from './context.js'

/** Adds `migrate` to the program. */
export function registerMigrateCommand(program: Command, ctx: CliContext): void {
  program
    .command('migrate')
    .description('apply pending migrations (to the embedded Postgres when DATABASE_URL is unset)')
    .action(async () => {
      const located = await locateDatabase(ctx)
      try {
        const { applied } = await migrateDatabase(located.url)
        const where = located.embedded
          ? ` (embedded Postgres in ${path.join(dataDir(ctx.env), 'postgres')})`
          : ''
        ctx.out.line(
          applied === 0
            ? `Nothing to apply: the database is up to date${where}.`
            : `Applied ${plural(applied, 'migration')}${where}: ${migrationNames().slice(-applied).join(', ')}`,
        )
      } finally {
        await located.stop()
      }
    })
}

// --- implementation ---

function migrationNames(): string[] {
  try {
    const journal = JSON.parse(
      readFileSync(path.join(migrationsFolder, 'meta', '_journal.json'), 'utf8'),
    ) as {
      entries?: Array<{ tag?: string }>
    }
    return (journal.entries ?? []).map((e) => e.tag ?? '?')
  } catch {
    return []
  }
}
