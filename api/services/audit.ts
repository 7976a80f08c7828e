import type { DbClient, Db } from '../../core/db';

export interface AuditEntry {
  tenantId?: number | null;
  actor: string;
  action: string;
  target: string;
  detail?: Record<string, unknown>;
  requestId?: string;
}

/** Appends to the audit log, inside the caller's transaction so the entry and the change land together. */
export async function audit(c: DbClient | Db, e: AuditEntry): Promise<void> {
  await c.query('INSERT INTO audit_log (tenant_id, actor, action, target, detail, request_id) VALUES ($1, $2, $3, $4, $5, $6)', [
    e.tenantId ?? null,
    e.actor,
    e.action,
    e.target,
    JSON.stringify(e.detail ?? {}),
    e.requestId ?? null,
  ]);
}
