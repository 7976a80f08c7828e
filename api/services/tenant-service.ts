import type { Db } from '../../core/db';
import { inTransaction } from '../../core/db';
import { ConflictError, InputError, NotFoundError } from '../../core/errors';
import { assertValidName } from '../../core/names';
import type { Principal } from '../../core/principal';
import { requirePlatformAdmin, requireTenantAdmin } from '../authz';
import { audit } from './audit';

const ROLES = ['admin', 'member', 'reader'] as const;
type Role = (typeof ROLES)[number];

function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string }).code === '23505';
}

export class TenantService {
  constructor(private readonly db: Db) {}

  async createTenant(principal: Principal, body: { name?: unknown }, requestId?: string) {
    requirePlatformAdmin(principal);
    const name = assertValidName('name', body.name);
    try {
      return await inTransaction(this.db, async (c) => {
        const r = await c.query('INSERT INTO tenants (name) VALUES ($1) RETURNING id, name', [name]);
        await audit(c, { tenantId: Number(r.rows[0].id), actor: principal.username, action: 'tenant.create', target: name, requestId });
        return { id: Number(r.rows[0].id), name: r.rows[0].name as string };
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictError(`tenant ${name} already exists`);
      throw err;
    }
  }

  async tenantByName(name: string): Promise<{ id: number; name: string }> {
    const r = await this.db.query('SELECT id, name FROM tenants WHERE name = $1', [name]);
    if (r.rowCount === 0) throw new NotFoundError(`tenant ${name} not found`);
    return { id: Number(r.rows[0].id), name: r.rows[0].name };
  }

  async createUser(principal: Principal, tenantName: string, body: { username?: unknown; role?: unknown }, requestId?: string) {
    const tenant = await this.tenantByName(assertValidName('tenant', tenantName));
    requireTenantAdmin(principal, tenant.id);
    const username = assertValidName('username', body.username);
    const role = (body.role ?? 'member') as Role;
    if (!ROLES.includes(role)) throw new InputError(`role must be one of ${ROLES.join(', ')}`);
    try {
      return await inTransaction(this.db, async (c) => {
        const r = await c.query('INSERT INTO users (tenant_id, username, role) VALUES ($1, $2, $3) RETURNING id', [tenant.id, username, role]);
        await audit(c, { tenantId: tenant.id, actor: principal.username, action: 'user.create', target: username, detail: { role }, requestId });
        return { id: Number(r.rows[0].id), username, role };
      });
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictError(`user ${username} already exists`);
      throw err;
    }
  }
}
