import { AuthenticationError, NotAllowedError } from '../core/errors';
import { scopeCeiling, atLeast, type Access, type Principal } from '../core/principal';

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
