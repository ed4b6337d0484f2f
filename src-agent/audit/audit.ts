import os from 'node:os'
import type { Tx } from '../../db/client.js'
import { auditLog } from '../../db/schema/index.js'
import { redact } from '../../shared/redact.js'

export interface AuditEntry {
  tenantId: string
  /** Who did it: `cli:<os user>`, `app:<user>`, or `system` for the agent's own work. */
  userId: string
  /** `<resource>.<verb>`, e.g. `connector.create`, `mapping.update`, `sync.trigger`. */
  action: string
  resource: string
  resourceId?: string | null
  before?: unknown
  after?: unknown
  metadata?: Record<string, unknown>
}

/**
 * Records a mutation in audit_log inside the caller's transaction, so the change and its
 * record commit or roll back together. Before/after are redacted: no secret reaches the log.
 */
export async function recordAudit(tx: Tx, entry: AuditEntry): Promise<void> {
  await tx.insert(auditLog).values(auditRow(entry))
}

/**
 * The audit_log row of an entry, redacted as recordAudit writes it: for a caller that inserts it
 * in a statement of its own making (with the change it records, in one round trip).
 */
export function auditRow(entry: AuditEntry): typeof auditLog.$inferInsert {
  const changes: { before?: unknown; after?: unknown } = {}
  if (entry.before !== undefined) changes.before = redact(entry.before)
  if (entry.after !== undefined) changes.after = redact(entry.after)
  return {
    tenantId: entry.tenantId,
    userId: entry.userId,
    action: entry.action,
    resource: entry.resource,
    resourceId: entry.resourceId ?? null,
    changes,
    metadata: (redact(entry.metadata ?? {}) as Record<string, unknown>) ?? {},
  }
}

/** The user id for work started from this machine's command line. */
export function cliUserId(env: NodeJS.ProcessEnv = process.env): string {
  if (env.GTM_USER) return env.GTM_USER
  try {
    return `cli:${os.userInfo().username}`
  } catch {
    return 'cli:unknown'
  }
}
