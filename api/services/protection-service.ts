import { z } from 'zod';
import type { Db } from '../../core/db';
import { InputError } from '../../core/errors';
import { assertValidName, isValidName } from '../../core/names';
import type { Principal } from '../../core/principal';
import type { BranchProtection } from '../../core/protections';
import { findReadableRepo } from '../../core/repos';
import { requireRepoAdmin } from '../authz';
import { flag, parseBody } from '../validation';
import { audit } from './audit';

const PATTERN = /^[A-Za-z0-9._/*-]{1,255}$/;

/** `PUT …/protections/{branch}`: unknown fields are refused, so a misspelt one never protects less than meant. */
const protectionBody = z.strictObject({
  allowForcePush: flag,
  allowDeletion: flag,
  pushers: z
    .array(z.string())
    .max(1000)
    .nullish()
    .superRefine((list, ctx) =>
      list?.forEach((p, i) => {
        if (!isValidName(p)) ctx.addIssue({ code: 'custom', input: p, message: `pushers[${i}] is not a user name (${JSON.stringify(p.slice(0, 100))})` });
      }),
    )
    .transform((v) => v ?? undefined),
});

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
    await this.db.query(
      `INSERT INTO protected_branches (tenant_id, repo_id, pattern, allow_force_push, allow_deletion, pushers) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (tenant_id, repo_id, pattern) DO UPDATE SET allow_force_push = $4, allow_deletion = $5, pushers = $6, updated_at = now()`,
      [repo.tenantId, repo.id, branch, allowForcePush, allowDeletion, pushers ?? null],
    );
    await audit(this.db, { tenantId: repo.tenantId, actor: principal.username, action: 'repo.protect', target: `${owner}/${name}:${branch}`, detail: { allowForcePush, allowDeletion, pushers }, requestId });
    return { pattern: branch, allowForcePush, allowDeletion, ...(pushers ? { pushers } : {}) };
  }

  async list(principal: Principal | null | undefined, owner: string, name: string): Promise<{ protections: BranchProtection[] }> {
    const { repo } = await findReadableRepo(this.db, principal, assertValidName('owner', owner), assertValidName('repo', name));
    const r = await this.db.query(
      'SELECT pattern, allow_force_push, allow_deletion, pushers FROM protected_branches WHERE tenant_id = $1 AND repo_id = $2 ORDER BY pattern',
      [repo.tenantId, repo.id],
    );
    return {
      protections: r.rows.map((row) => ({ pattern: row.pattern, allowForcePush: row.allow_force_push, allowDeletion: row.allow_deletion, ...(row.pushers ? { pushers: row.pushers } : {}) })),
    };
  }

  async remove(principal: Principal, owner: string, name: string, branch: string, requestId?: string): Promise<void> {
    const repo = await this.adminRepo(principal, owner, name);
    await this.db.query('DELETE FROM protected_branches WHERE tenant_id = $1 AND repo_id = $2 AND pattern = $3', [repo.tenantId, repo.id, branch]);
    await audit(this.db, { tenantId: repo.tenantId, actor: principal.username, action: 'repo.unprotect', target: `${owner}/${name}:${branch}`, requestId });
  }
}
