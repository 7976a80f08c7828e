import { promises as fs } from 'node:fs';
import type { Db } from '../core/db';
import { inTransaction } from '../core/db';
import { appendAudit } from '../core/stores/audit-store';
import { generateToken, hashToken } from '../core/tokens';

/** Tenant and user made on first start; the admin is a platform admin (may create tenants). */
export const ADMIN_TENANT = 'dotgit';
export const ADMIN_USER = 'admin';

/**
 * On first start (no platform admin yet) creates the admin and an admin-scoped token, and writes
 * the token to `tokenFile` with mode 0600 (as Jenkins does with its initial password). Later starts
 * read the file back; if it is gone, a new token is made.
 */
export async function bootstrapAdmin(db: Db, tokenFile: string): Promise<{ token: string; created: boolean }> {
  const existing = await fs.readFile(tokenFile, 'utf8').then((t) => t.trim(), () => undefined);
  if (existing) {
    const ok = await db.query('SELECT 1 FROM tokens WHERE token_hash = $1 AND revoked_at IS NULL', [hashToken(existing)]);
    if (ok.rowCount) return { token: existing, created: false };
  }
  const token = generateToken();
  const created = await inTransaction(db, async (c) => {
    await c.query('SELECT pg_advisory_xact_lock(724002)');
    await c.query('INSERT INTO tenants (name) VALUES ($1) ON CONFLICT (name) DO NOTHING', [ADMIN_TENANT]);
    const tenant = (await c.query('SELECT id FROM tenants WHERE name = $1', [ADMIN_TENANT])).rows[0];
    let user = (await c.query('SELECT id FROM users WHERE username = $1', [ADMIN_USER])).rows[0];
    const isNew = !user;
    if (!user) {
      user = (await c.query(`INSERT INTO users (tenant_id, username, role, platform_admin) VALUES ($1, $2, 'admin', true) RETURNING id`, [tenant.id, ADMIN_USER])).rows[0];
    }
    await c.query(`INSERT INTO tokens (tenant_id, user_id, token_hash, scopes) VALUES ($1, $2, $3, $4)`, [tenant.id, user.id, hashToken(token), ['read', 'write', 'admin']]);
    await appendAudit(c, { tenantId: Number(tenant.id), actor: 'system', action: 'admin.bootstrap', target: ADMIN_USER });
    return isNew;
  });
  await fs.writeFile(tokenFile, token + '\n', { mode: 0o600 });
  await fs.chmod(tokenFile, 0o600);
  return { token, created };
}
