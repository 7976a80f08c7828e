import { AuthenticationError, NotAllowedError } from '../core/errors';
import type { Db } from '../core/db';
import { assertValidName } from '../core/names';
import { scopeCeiling, atLeast, type Access, type Principal } from '../core/principal';
import { findReadableRepo, type RepoRow } from '../core/repos';

/** The caller, or 401 when the request is anonymous. */
export function requirePrincipal(principal: Principal | null | undefined): Principal {
  if (!principal) throw new AuthenticationError('authentication required: send Authorization: Bearer <token>');
  return principal;
}

/** 403 unless the token's scopes reach `need`. */
export function requireScope(principal: Principal, need: Access): void {
  if (!atLeast(scopeCeiling(principal.scopes), need)) throw new NotAllowedError(`this token lacks the ${need} scope`);
}

export function requirePlatformAdmin(principal: Principal): void {
  requireScope(principal, 'admin');
  if (!principal.platformAdmin) throw new NotAllowedError('only a platform admin may do this');
}

/** Tenant admin of `tenantId` (or platform admin), with an admin-scoped token. */
export function requireTenantAdmin(principal: Principal, tenantId: number): void {
  requireScope(principal, 'admin');
  if (principal.platformAdmin) return;
  if (principal.tenantId !== tenantId || principal.role !== 'admin') throw new NotAllowedError('only an admin of this tenant may do this');
}

/**
 * The repository, if the caller administers it with an admin-scoped token: 404 when they cannot
 * read it, 403 (saying `what` needs admin) when they can read but not administer.
 */
export async function requireRepoAdmin(db: Db, principal: Principal, owner: string, name: string, what: string): Promise<RepoRow> {
  const { repo, access } = await findReadableRepo(db, principal, assertValidName('owner', owner), assertValidName('repo', name));
  if (!atLeast(access, 'admin')) throw new NotAllowedError(`${what} needs admin access to the repository`);
  requireScope(principal, 'admin');
  return repo;
}

/** The repository, if the caller may write to it with a write-scoped token (404 when unreadable, 403 otherwise). */
export async function requireRepoWrite(db: Db, principal: Principal, owner: string, name: string, what: string): Promise<RepoRow> {
  const { repo, access } = await findReadableRepo(db, principal, assertValidName('owner', owner), assertValidName('repo', name));
  if (!atLeast(access, 'write')) throw new NotAllowedError(`${what} needs write access to the repository`);
  requireScope(principal, 'write');
  return repo;
}
