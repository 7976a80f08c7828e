import { promises as fs } from 'node:fs';
import type { Db } from '../core/db';
import { inTransaction } from '../core/db';
import { appendAudit } from '../core/stores/audit-store';
import { advisoryXactLock } from '../core/stores/locks-store';
import { ensureTenant, findUserByName, insertToken, insertUser, isLiveTokenHash } from '../core/stores/tenants-store';
import { generateToken, hashToken } from '../core/tokens';

/** Tenant and user made on first start; the admin is a platform admin (may create tenants). */
export const ADMIN_TENANT = 'dotgit';
export const ADMIN_USER = 'admin';
/** The advisory lock key the first start's bootstrap holds. */
const BOOTSTRAP_LOCK = 724002;

/**
 * On first start (no platform admin yet) creates the admin and an admin-scoped token, and writes
 * the token to `tokenFile` with mode 0600 (as Jenkins does with its initial password). Later starts
 * read the file back; if it is gone, a new token is made.
 */
export async function bootstrapAdmin(db: Db, tokenFile: string): Promise<{ token: string; created: boolean }> {
  const existing = await fs.readFile(tokenFile, 'utf8').then((t) => t.trim(), () => undefined);
  if (existing && (await isLiveTokenHash(db, hashToken(existing)))) return { token: existing, created: false };
  const token = generateToken();
  const created = await inTransaction(db, async (c) => {
    // Two first starts at once (api and worker) make one admin.
    await advisoryXactLock(c, BOOTSTRAP_LOCK);
    const tenantId = await ensureTenant(c, ADMIN_TENANT);
    const known = await findUserByName(c, ADMIN_USER);
    const userId = known ? Number(known.id) : await insertUser(c, { tenantId, username: ADMIN_USER, role: 'admin', platformAdmin: true });
    await insertToken(c, { tenantId, userId, tokenHash: hashToken(token), scopes: ['read', 'write', 'admin'] });
    await appendAudit(c, { tenantId, actor: 'system', action: 'admin.bootstrap', target: ADMIN_USER });
    return !known;
  });
  await fs.writeFile(tokenFile, token + '\n', { mode: 0o600 });
  await fs.chmod(tokenFile, 0o600);
  return { token, created };
}
