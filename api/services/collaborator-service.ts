import { z } from 'zod';
import type { Db } from '../../core/db';
import { NotFoundError } from '../../core/errors';
import { assertValidName } from '../../core/names';
import type { Principal } from '../../core/principal';
import { requireRepoAdmin } from '../authz';
import { parseBody } from '../validation';
import { audit } from './audit';

const ACCESS = ['read', 'write', 'admin'] as const;
const grantBody = z.strictObject({ access: z.enum(ACCESS, { error: `access must be one of ${ACCESS.join(', ')}` }) });

/**
 * Per-repository grants (`read`/`write`/`admin`) on top of tenant roles, as GitHub collaborators:
 * a user of any tenant can be given access to one repository. Tokens' scopes still cap it.
 */
export class CollaboratorService {
  constructor(private readonly db: Db) {}

  private adminRepo(principal: Principal, owner: string, name: string) {
    return requireRepoAdmin(this.db, principal, owner, name, 'managing collaborators');
  }

  async put(principal: Principal, owner: string, name: string, username: string, body: unknown, requestId?: string) {
    const repo = await this.adminRepo(principal, owner, name);
    const { access } = parseBody(grantBody, body);
    const user = (await this.db.query('SELECT id FROM users WHERE username = $1', [assertValidName('username', username)])).rows[0];
    if (!user) throw new NotFoundError(`user ${username} not found`);
    await this.db.query(
      `INSERT INTO permissions (tenant_id, repo_id, user_id, access) VALUES ($1, $2, $3, $4)
       ON CONFLICT (tenant_id, repo_id, user_id) DO UPDATE SET access = $4`,
      [repo.tenantId, repo.id, user.id, access],
    );
    await audit(this.db, { tenantId: repo.tenantId, actor: principal.username, action: 'repo.grant', target: `${owner}/${name}`, detail: { username, access }, requestId });
    return { username, access };
  }

  async list(principal: Principal, owner: string, name: string) {
    const repo = await this.adminRepo(principal, owner, name);
    const r = await this.db.query(
      'SELECT u.username, p.access FROM permissions p JOIN users u ON u.id = p.user_id WHERE p.tenant_id = $1 AND p.repo_id = $2 ORDER BY u.username',
      [repo.tenantId, repo.id],
    );
    return { collaborators: r.rows.map((row) => ({ username: row.username, access: row.access })) };
  }

  async remove(principal: Principal, owner: string, name: string, username: string, requestId?: string): Promise<void> {
    const repo = await this.adminRepo(principal, owner, name);
    await this.db.query('DELETE FROM permissions p USING users u WHERE u.id = p.user_id AND p.tenant_id = $1 AND p.repo_id = $2 AND u.username = $3', [
      repo.tenantId,
      repo.id,
      username,
    ]);
    await audit(this.db, { tenantId: repo.tenantId, actor: principal.username, action: 'repo.revoke', target: `${owner}/${name}`, detail: { username }, requestId });
  }
}
