import { promises as fs } from 'node:fs';
import { inGlobalTransactionAudited } from '../core/shard-audit';
import type { ShardRouter } from '../core/shard-router';
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
 * read the file back; if it is gone, a new token is made. Tenants, users and tokens are global
 * tables; the audit entry goes to the admin tenant's shard (ADR 0025).
 */
export async function bootstrapAdmin(router: ShardRouter, tokenFile: string): Promise<{ token: string; created: boolean }> {
  const existing = await fs.readFile(tokenFile, 'utf8').then((t) => t.trim(), () => undefined);
  if (existing && (await isLiveTokenHash(router.global, hashToken(existing)))) return { token: existing, created: false };
  const token = generateToken();
  const created = await inGlobalTransactionAudited(router, async (c) => {
    // Two first starts at once (api and worker) make one admin.
    await advisoryXactLock(c, BOOTSTRAP_LOCK);
    const tenantId = await ensureTenant(c, ADMIN_TENANT);
    const known = await findUserByName(c, ADMIN_USER);
    const userId = known ? Number(known.id) : await insertUser(c, { tenantId, username: ADMIN_USER, role: 'admin', platformAdmin: true });
    await insertToken(c, { tenantId, userId, tokenHash: hashToken(token), scopes: ['read', 'write', 'admin'] });
    return { value: !known, audit: [{ tenantId, actor: 'system', action: 'admin.bootstrap', target: ADMIN_USER }] };
  });
  await fs.writeFile(tokenFile, token + '\n', { mode: 0o600 });
  await fs.chmod(tokenFile, 0o600);
  return { token, created };
}
