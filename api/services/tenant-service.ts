import { z } from 'zod';
import type { Db } from '../../core/db';
import { inTransaction } from '../../core/db';
import { ConflictError, NotFoundError } from '../../core/errors';
import { assertValidName } from '../../core/names';
import type { Principal } from '../../core/principal';
import { requirePlatformAdmin, requireTenantAdmin } from '../authz';
import { parseBody, validName } from '../validation';
import { audit } from './audit';
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

export class TenantService {
  constructor(private readonly db: Db) {}

  async createTenant(principal: Principal, body: unknown, requestId?: string) {
    requirePlatformAdmin(principal);
    const { name } = parseBody(tenantBody, body);
    try {
      return await inTransaction(this.db, async (c) => {
        const tenant = await insertTenant(c, name);
        await audit(c, { tenantId: tenant.id, actor: principal.username, action: 'tenant.create', target: name, requestId });
        return tenant;
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictError(`tenant ${name} already exists`);
      throw err;
    }
  }

  async tenantByName(name: string): Promise<{ id: number; name: string }> {
    const tenant = await findTenantByName(this.db, name);
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
      return await inTransaction(this.db, async (c) => {
        const id = await insertUser(c, { tenantId: tenant.id, username, role });
        await audit(c, { tenantId: tenant.id, actor: principal.username, action: 'user.create', target: username, detail: { role }, requestId });
        return { id, username, role };
      });
    } catch (err) {
      if (isUniqueViolation(err)) {
        // Names are global; the answer says only that this one is taken, never where (ADR 0010).
        // Each refusal is audited in the caller's tenant, so probing for names shows.
        await audit(this.db, { tenantId: tenant.id, actor: principal.username, action: 'user.create.refused', target: username, detail: { reason: 'username taken' }, requestId });
        throw new ConflictError(`username ${username} is not available`);
      }
      throw err;
    }
  }
}
