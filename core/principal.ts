import type { Scope } from './tokens';

/** Who is calling, as the gateway established it and passed on in the signed internal identity. */
export interface Principal {
  userId: number;
  username: string;
  tenantId: number;
  tenantName: string;
  role: 'admin' | 'member' | 'reader';
  platformAdmin: boolean;
  scopes: Scope[];
  tokenId: number;
  /**
   * When this credential ends (ms since the epoch): the API token's expiry, or the JWT's `exp` (and
   * the expiry of the token it was exchanged for). Null or absent: it does not expire. Tokens it
   * creates never outlive it (docs/decisions/0009-token-derivation.md).
   */
  expiresAt?: number | null;
}

export type Access = 'none' | 'read' | 'write' | 'admin';
const RANK: Record<Access, number> = { none: 0, read: 1, write: 2, admin: 3 };

export function atLeast(have: Access, need: Access): boolean {
  return RANK[have] >= RANK[need];
}

function min(a: Access, b: Access): Access {
  return RANK[a] <= RANK[b] ? a : b;
}

/** The most a token's scopes allow, whatever the user's role. */
export function scopeCeiling(scopes: readonly Scope[]): Access {
  if (scopes.includes('admin')) return 'admin';
  if (scopes.includes('write')) return 'write';
  if (scopes.includes('read')) return 'read';
  return 'none';
}

export interface RepoRef {
  tenantId: number;
  visibility: 'public' | 'private';
}

/**
 * Effective access of a caller to a repository: the user's role or explicit grant, capped by the
 * token's scopes; anonymous callers read public repositories only. Deny by default.
 */
export function repoAccess(principal: Principal | undefined, repo: RepoRef, grant?: Access): Access {
  const publicRead: Access = repo.visibility === 'public' ? 'read' : 'none';
  if (!principal) return publicRead;
  let byRole: Access = 'none';
  if (principal.platformAdmin) byRole = 'admin';
  else if (principal.tenantId === repo.tenantId) {
    byRole = principal.role === 'admin' ? 'admin' : principal.role === 'member' ? 'write' : 'read';
  }
  const granted = grant && RANK[grant] > RANK[byRole] ? grant : byRole;
  const best = RANK[granted] >= RANK[publicRead] ? granted : publicRead;
  return min(best, scopeCeiling(principal.scopes));
}
