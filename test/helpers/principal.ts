import type { Queryable } from '../../core/db';
import type { Principal } from '../../core/principal';
import type { TenantFixture } from './api-client';

/** The tenant admin of `t` as the gateway vouches for it (full scopes), for calls straight to a service with a signed identity. */
export async function adminPrincipalOf(db: Queryable, t: TenantFixture): Promise<Principal> {
  const u = (await db.query(`SELECT id, tenant_id FROM users WHERE username = $1`, [t.username])).rows[0];
  return { userId: Number(u.id), username: t.username, tenantId: Number(u.tenant_id), tenantName: t.tenant, role: 'admin', platformAdmin: false, scopes: ['read', 'write', 'admin'], tokenId: 0 };
}
