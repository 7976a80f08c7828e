import type { Db } from '../core/db';
import { AuthenticationError } from '../core/errors';
import type { Principal } from '../core/principal';
import { hashToken, type Scope } from '../core/tokens';
import { findLiveTokenByHash, findUserWithTenant, liveTokenExpiry } from '../core/stores/tenants-store';

/**
 * `<scheme> <credentials>` as RFC 9110 §11.4 has it, with the credentials one token68 (what Bearer
 * and Basic carry): anything after them is refused, never ignored.
 */
const AUTHORIZATION = /^([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*) +([A-Za-z0-9._~+/-]+=*)$/;
const MALFORMED = 'malformed Authorization header: expected "Bearer <token>" or "Basic <base64 of user:token>"';

/** The token of a request: `Authorization: Bearer <token>`, or HTTP Basic with the token as password (git). */
export function credentialsFrom(authorization: string | undefined): string | undefined {
  if (!authorization) return undefined;
  const m = AUTHORIZATION.exec(authorization);
  if (!m) throw new AuthenticationError(MALFORMED);
  const [, scheme, value] = m;
  if (/^bearer$/i.test(scheme)) return value;
  if (/^basic$/i.test(scheme)) {
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value)) throw new AuthenticationError(MALFORMED);
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const password = colon >= 0 ? decoded.slice(colon + 1) : '';
    if (!password) throw new AuthenticationError('HTTP Basic needs the token as password');
    return password;
  }
  throw new AuthenticationError(`unsupported authorization scheme ${scheme}`);
}

/** A user row (user_id, username, role, platform_admin, tenant_id, tenant_name) as a principal. */
export function principalFromRow(row: Record<string, unknown>, scopes: Scope[], tokenId: number, expiresAt: number | null): Principal {
  return {
    userId: Number(row.user_id),
    username: String(row.username),
    tenantId: Number(row.tenant_id),
    tenantName: String(row.tenant_name),
    role: row.role as Principal['role'],
    platformAdmin: row.platform_admin === true,
    scopes,
    tokenId,
    expiresAt,
  };
}

const msOf = (v: unknown): number | null => (v ? new Date(v as string).getTime() : null);

/**
 * Looks a token up by its hash in Postgres: unknown, expired and revoked tokens all answer the same
 * 401. The gateway caches the answer (`TokenCache`), with `expiresAt` to honour expiry from memory.
 */
export async function lookupToken(db: Db, hash: Buffer): Promise<{ principal: Principal; expiresAt: Date | null }> {
  const row = await findLiveTokenByHash(db, hash);
  if (!row) throw new AuthenticationError('invalid, expired or revoked token');
  const expiresAt = msOf(row.expires_at);
  return { principal: principalFromRow(row, row.scopes as Scope[], Number(row.token_id), expiresAt), expiresAt: expiresAt === null ? null : new Date(expiresAt) };
}

/** Plausible API token length; longer values are refused before hashing or querying. */
export const MAX_TOKEN_LENGTH = 512;

/** The principal of an API token, straight from Postgres (no cache). */
export async function principalForToken(db: Db, token: string): Promise<Principal> {
  if (token.length > MAX_TOKEN_LENGTH) throw new AuthenticationError('invalid token');
  return (await lookupToken(db, hashToken(token))).principal;
}

/**
 * The principal of a verified JWT: the named dotgit user, with the token's scopes. For our own
 * JWTs the API token they were exchanged for must still be valid, so revoking it ends them too.
 * It ends at the JWT's `exp` or the API token's expiry, whichever comes first.
 */
export async function principalForJwt(db: Db, jwt: { username: string; scopes: Scope[]; tokenId?: number; expiresAt?: number }): Promise<Principal> {
  const row = await findUserWithTenant(db, jwt.username);
  if (!row) throw new AuthenticationError('invalid or expired JWT');
  let expiresAt = jwt.expiresAt ?? null;
  if (jwt.tokenId !== undefined) {
    const live = await liveTokenExpiry(db, jwt.tokenId, row.user_id);
    if (!live) throw new AuthenticationError('invalid or expired JWT');
    const tokenEnds = msOf(live.expires_at);
    if (tokenEnds !== null) expiresAt = expiresAt === null ? tokenEnds : Math.min(expiresAt, tokenEnds);
  }
  return principalFromRow(row, jwt.scopes, jwt.tokenId ?? 0, expiresAt);
}

/** Compact JWS shape (header.payload.signature, base64url); anything else is an API token. */
export function looksLikeJwt(token: string): boolean {
  return /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*$/.test(token);
}

/**
 * The principal of a verified client certificate whose subject CN names a dotgit user. A
 * certificate stands for read and write (never admin: administration needs a token).
 */
export async function principalForCertificate(db: Db, username: string): Promise<Principal> {
  const p = await principalForJwt(db, { username, scopes: ['read', 'write'] }).catch(() => undefined);
  if (!p) throw new AuthenticationError('the client certificate names no dotgit user');
  return p;
}
