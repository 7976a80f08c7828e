import { z } from 'zod';
import type { ShardRouter } from '../../core/shard-router';
import { tenantDirectory } from '../../core/tenant-directory';
import { NotFoundError } from '../../core/errors';
import { assertValidName } from '../../core/names';
import type { Principal } from '../../core/principal';
import { requireRepoAdmin } from '../authz';
import { parseBody } from '../validation';
import { audit } from './audit';
import { deleteGrant, findUserByName, listGrants, upsertCollaborator, usernamesByIds } from '../../core/stores/tenants-store';

const ACCESS = ['read', 'write', 'admin'] as const;
const grantBody = z.strictObject({ access: z.enum(ACCESS, { error: `access must be one of ${ACCESS.join(', ')}` }) });

/**
 * Per-repository grants (`read`/`write`/`admin`) on top of tenant roles, as GitHub collaborators:
 * a user of any tenant can be given access to one repository. Tokens' scopes still cap it.
 */
export class CollaboratorService {
  /** Grants (`permissions`) live in the repository's tenant's shard, users in the global database (ADR 0025). */
  constructor(private readonly router: ShardRouter) {}

  private async adminRepo(principal: Principal, owner: string, name: string) {
    return requireRepoAdmin(await tenantDirectory(this.router).dbOfOwner(owner), principal, owner, name, 'managing collaborators');
  }

  async put(principal: Principal, owner: string, name: string, username: string, body: unknown, requestId?: string) {
    const repo = await this.adminRepo(principal, owner, name);
    const { access } = parseBody(grantBody, body);
    const user = await findUserByName(this.router.global, assertValidName('username', username));
    if (!user) throw new NotFoundError(`user ${username} not found`);
    await upsertCollaborator(this.router.forTenant(repo.tenantId), repo.tenantId, repo.id, user.id, access);
    await audit(this.router.forTenant(repo.tenantId), { tenantId: repo.tenantId, actor: principal.username, action: 'repo.grant', target: `${owner}/${name}`, detail: { username, access }, requestId });
    return { username, access };
  }

  async list(principal: Principal, owner: string, name: string) {
    const repo = await this.adminRepo(principal, owner, name);
    const grants = await listGrants(this.router.forTenant(repo.tenantId), repo.tenantId, repo.id);
    const names = await usernamesByIds(this.router.global, grants.map((g) => g.userId));
    const collaborators = grants.flatMap((g) => (names.has(g.userId) ? [{ username: names.get(g.userId)!, access: g.access }] : []));
    return { collaborators: collaborators.sort((a, b) => (a.username < b.username ? -1 : a.username > b.username ? 1 : 0)) };
  }

  async remove(principal: Principal, owner: string, name: string, username: string, requestId?: string): Promise<void> {
    const repo = await this.adminRepo(principal, owner, name);
    const user = await findUserByName(this.router.global, assertValidName('username', username));
    if (user) await deleteGrant(this.router.forTenant(repo.tenantId), repo.tenantId, repo.id, Number(user.id));
    await audit(this.router.forTenant(repo.tenantId), { tenantId: repo.tenantId, actor: principal.username, action: 'repo.revoke', target: `${owner}/${name}`, detail: { username }, requestId });
  }
}
