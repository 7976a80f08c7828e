import { z } from 'zod';
import type { Db } from '../../core/db';
import { NotFoundError } from '../../core/errors';
import { assertValidName } from '../../core/names';
import type { Principal } from '../../core/principal';
import { requireRepoAdmin } from '../authz';
import { parseBody } from '../validation';
import { audit } from './audit';
import { deleteCollaborator, findUserByName, listCollaborators, upsertCollaborator } from '../../core/stores/tenants-store';

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
    const user = await findUserByName(this.db, assertValidName('username', username));
    if (!user) throw new NotFoundError(`user ${username} not found`);
    await upsertCollaborator(this.db, repo.tenantId, repo.id, user.id, access);
    await audit(this.db, { tenantId: repo.tenantId, actor: principal.username, action: 'repo.grant', target: `${owner}/${name}`, detail: { username, access }, requestId });
    return { username, access };
  }

  async list(principal: Principal, owner: string, name: string) {
    const repo = await this.adminRepo(principal, owner, name);
    const rows = await listCollaborators(this.db, repo.tenantId, repo.id);
    return { collaborators: rows.map((row) => ({ username: row.username, access: row.access })) };
  }

  async remove(principal: Principal, owner: string, name: string, username: string, requestId?: string): Promise<void> {
    const repo = await this.adminRepo(principal, owner, name);
    await deleteCollaborator(this.db, repo.tenantId, repo.id, username);
    await audit(this.db, { tenantId: repo.tenantId, actor: principal.username, action: 'repo.revoke', target: `${owner}/${name}`, detail: { username }, requestId });
  }
}
