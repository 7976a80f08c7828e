import type { DbClient, Db } from '../../core/db';
import { appendAudit, type AuditEntry } from '../../core/stores/audit-store';

export type { AuditEntry };

/**
 * Appends to the audit log's hash chain (core/stores/audit-store.ts), inside the caller's
 * transaction when given its client, so the entry and the change land together.
 */
export async function audit(c: DbClient | Db, e: AuditEntry): Promise<void> {
  await appendAudit(c, e);
}
