import { z } from 'zod';
import { appendAuditRouted, inGlobalTransactionAudited } from '../../core/shard-audit';
import type { ShardRouter } from '../../core/shard-router';
import { copyTenantEverywhere } from '../../core/tenant-directory';
import { ConflictError, NotFoundError } from '../../core/errors';
import { assertValidName } from '../../core/names';
import type { Principal } from '../../core/principal';
import { requirePlatformAdmin, requireTenantAdmin } from '../authz';
import { parseBody, validName } from '../validation';
import { findTenantByName, insertTenant, insertUser } from '../../core/stores/tenants-store';

const ROLES = ['admin', 'member', 'reader'] as const;

const tenantBody = z.strictObject({ name: validName('name') });
const userBody = z.strictObject({
  username: validName('username'),
  role: z
    .enum(ROLES, { error: `role must be one of ${ROLES.join(', ')}` })
    .nullish()
    .transform((r) => r ?? 'member'),
});

function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string }).code === '23505';
}

/**
 * Tenants and users are global tables (the tenant directory and the identities every request is
 * authenticated against, ADR 0025), in the global database; `tenants` also has a reference copy in
 * every shard database, and their audit entries go to the tenant's shard.
 */
export class TenantService {
  constructor(private readonly router: ShardRouter) {}

  async createTenant(principal: Principal, body: unknown, requestId?: string) {
    requirePlatformAdmin(principal);
    const { name } = parseBody(tenantBody, body);
    try {
      const tenant = await inGlobalTransactionAudited(this.router, async (c) => {
        const tenant = await insertTenant(c, name);
        return { value: tenant, audit: [{ tenantId: tenant.id, actor: principal.username, action: 'tenant.create', target: name, requestId }] };
      });
      // Before the answer: the tenant's repositories reference it in their shard's database.
      await copyTenantEverywhere(this.router, tenant);
      return tenant;
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictError(`tenant ${name} already exists`);
      throw err;
    }
  }

  async tenantByName(name: string): Promise<{ id: number; name: string }> {
    const tenant = await findTenantByName(this.router.global, name);
    if (!tenant) throw new NotFoundError(`tenant ${name} not found`);
    return tenant;
  }

  /**
   * A user in a tenant the caller administers. Outsiders get the same 404 whether or not the tenant
   * exists, and a taken name the same 409 wherever it is taken (docs/decisions/0010-name-enumeration.md).
   */
  async createUser(principal: Principal, tenantName: string, body: unknown, requestId?: string) {
    assertValidName('tenant', tenantName);
    // Before any lookup: whether the tenant exists is no business of a caller outside it.
    if (!principal.platformAdmin && principal.tenantName !== tenantName) throw new NotFoundError(`tenant ${tenantName} not found`);
    const tenant = await this.tenantByName(tenantName);
    requireTenantAdmin(principal, tenant.id);
    const { username, role } = parseBody(userBody, body);
    try {
      return await inGlobalTransactionAudited(this.router, async (c) => {
        const id = await insertUser(c, { tenantId: tenant.id, username, role });
        return { value: { id, username, role }, audit: [{ tenantId: tenant.id, actor: principal.username, action: 'user.create', target: username, detail: { role }, requestId }] };
      });
    } catch (err) {
      if (isUniqueViolation(err)) {
        // Names are global; the answer says only that this one is taken, never where (ADR 0010).
        // Each refusal is audited in the caller's tenant, so probing for names shows.
        await appendAuditRouted(this.router, { tenantId: tenant.id, actor: principal.username, action: 'user.create.refused', target: username, detail: { reason: 'username taken' }, requestId });
        throw new ConflictError(`username ${username} is not available`);
      }
      throw err;
    }
  }
}
