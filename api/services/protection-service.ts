import type { ShardRouter } from '../../core/shard-router';
import { tenantDirectory } from '../../core/tenant-directory';
import { InputError } from '../../core/errors';
import { assertValidName } from '../../core/names';
import type { Principal } from '../../core/principal';
import type { BranchProtection } from '../../core/protections';
import { findReadableRepo } from '../../core/repos';
import { requireRepoAdmin } from '../authz';
import { parseBody } from '../validation';
import { protectionBody } from '../schemas/settings';
import { audit } from './audit';
import { deleteProtection, listProtections, upsertProtection } from '../../core/stores/repos-store';

const PATTERN = /^[A-Za-z0-9._/*-]{1,255}$/;

/** `PUT …/protections/{branch}`: the route's schema (unknown fields are refused, so a misspelt one never protects less than meant). */

/** Protected branches of a repository (CONTRACT `PUT …/protections/{branch}`), enforced by the git-server's pre-receive hook. */
export class ProtectionService {
  /** Repository-owned rows live in their tenant's shard database (ADR 0025). */
  constructor(private readonly router: ShardRouter) {}

  private async adminRepo(principal: Principal, owner: string, name: string) {
    return requireRepoAdmin(await tenantDirectory(this.router).dbOfOwner(owner), principal, owner, name, 'protecting branches');
  }

  async put(principal: Principal, owner: string, name: string, branch: string, body: unknown, requestId?: string): Promise<BranchProtection> {
    const repo = await this.adminRepo(principal, owner, name);
    // git's own ref-name rules (check-ref-format): no "..", no empty or dot-led segments, no ".lock" ends.
    if (!PATTERN.test(branch) || branch.includes('..') || branch.endsWith('.') || branch.split('/').some((p) => p === '' || p.startsWith('.') || p.startsWith('-') || p.endsWith('.lock'))) {
      throw new InputError('branch must be a branch name or glob of letters, digits, . _ - / and * (no "..", no empty segments or ones starting with "." or "-")');
    }
    const { allowForcePush, allowDeletion, pushers } = parseBody(protectionBody, body);
    await upsertProtection(this.router.forTenant(repo.tenantId), repo.tenantId, repo.id, { pattern: branch, allowForcePush, allowDeletion, pushers: pushers ?? null });
    await audit(this.router.forTenant(repo.tenantId), { tenantId: repo.tenantId, actor: principal.username, action: 'repo.protect', target: `${owner}/${name}:${branch}`, detail: { allowForcePush, allowDeletion, pushers }, requestId });
    return { pattern: branch, allowForcePush, allowDeletion, ...(pushers ? { pushers } : {}) };
  }

  async list(principal: Principal | null | undefined, owner: string, name: string): Promise<{ protections: BranchProtection[] }> {
    const { repo } = await findReadableRepo(await tenantDirectory(this.router).dbOfOwner(assertValidName('owner', owner)), principal, owner, assertValidName('repo', name));
    const rows = await listProtections(this.router.forTenant(repo.tenantId), repo.tenantId, repo.id);
    return {
      protections: rows.map((row) => ({ pattern: row.pattern, allowForcePush: row.allow_force_push, allowDeletion: row.allow_deletion, ...(row.pushers ? { pushers: row.pushers } : {}) })),
    };
  }

  async remove(principal: Principal, owner: string, name: string, branch: string, requestId?: string): Promise<void> {
    const repo = await this.adminRepo(principal, owner, name);
    await deleteProtection(this.router.forTenant(repo.tenantId), repo.tenantId, repo.id, branch);
    await audit(this.router.forTenant(repo.tenantId), { tenantId: repo.tenantId, actor: principal.username, action: 'repo.unprotect', target: `${owner}/${name}:${branch}`, requestId });
  }
}
