import type { Db } from '../../core/db';
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
  constructor(private readonly db: Db) {}

  private adminRepo(principal: Principal, owner: string, name: string) {
    return requireRepoAdmin(this.db, principal, owner, name, 'protecting branches');
  }

  async put(principal: Principal, owner: string, name: string, branch: string, body: unknown, requestId?: string): Promise<BranchProtection> {
    const repo = await this.adminRepo(principal, owner, name);
    // git's own ref-name rules (check-ref-format): no "..", no empty or dot-led segments, no ".lock" ends.
    if (!PATTERN.test(branch) || branch.includes('..') || branch.endsWith('.') || branch.split('/').some((p) => p === '' || p.startsWith('.') || p.startsWith('-') || p.endsWith('.lock'))) {
      throw new InputError('branch must be a branch name or glob of letters, digits, . _ - / and * (no "..", no empty segments or ones starting with "." or "-")');
    }
    const { allowForcePush, allowDeletion, pushers } = parseBody(protectionBody, body);
    await upsertProtection(this.db, repo.tenantId, repo.id, { pattern: branch, allowForcePush, allowDeletion, pushers: pushers ?? null });
    await audit(this.db, { tenantId: repo.tenantId, actor: principal.username, action: 'repo.protect', target: `${owner}/${name}:${branch}`, detail: { allowForcePush, allowDeletion, pushers }, requestId });
    return { pattern: branch, allowForcePush, allowDeletion, ...(pushers ? { pushers } : {}) };
  }

  async list(principal: Principal | null | undefined, owner: string, name: string): Promise<{ protections: BranchProtection[] }> {
    const { repo } = await findReadableRepo(this.db, principal, assertValidName('owner', owner), assertValidName('repo', name));
    const rows = await listProtections(this.db, repo.tenantId, repo.id);
    return {
      protections: rows.map((row) => ({ pattern: row.pattern, allowForcePush: row.allow_force_push, allowDeletion: row.allow_deletion, ...(row.pushers ? { pushers: row.pushers } : {}) })),
    };
  }

  async remove(principal: Principal, owner: string, name: string, branch: string, requestId?: string): Promise<void> {
    const repo = await this.adminRepo(principal, owner, name);
    await deleteProtection(this.db, repo.tenantId, repo.id, branch);
    await audit(this.db, { tenantId: repo.tenantId, actor: principal.username, action: 'repo.unprotect', target: `${owner}/${name}:${branch}`, requestId });
  }
}
