import type { Db } from '../core/db';
import { AuthenticationError } from '../core/errors';
import type { Principal } from '../core/principal';
import { hashToken, type Scope } from '../core/tokens';

/** The token of a request: `Authorization: Bearer <token>`, or HTTP Basic with the token as password (git). */
export function credentialsFrom(authorization: string | undefined): string | undefined {
  if (!authorization) return undefined;
  const [scheme, value] = authorization.split(' ', 2);
  if (!value) throw new AuthenticationError('malformed Authorization header');
  if (/^bearer$/i.test(scheme)) return value.trim();
  if (/^basic$/i.test(scheme)) {
    const decoded = Buffer.from(value, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const password = colon >= 0 ? decoded.slice(colon + 1) : '';
    if (!password) throw new AuthenticationError('HTTP Basic needs the token as password');
    return password;
  }
  throw new AuthenticationError(`unsupported authorization scheme ${scheme}`);
}

/**
 * Looks the token up by its hash on every request, so a revoked or expired token stops working
 * at once. Unknown, expired and revoked tokens all answer the same 401.
 */
export async function principalForToken(db: Db, token: string): Promise<Principal> {
  if (token.length > 512) throw new AuthenticationError('invalid token');
  const r = await db.query(
    `SELECT t.id AS token_id, t.scopes, u.id AS user_id, u.username, u.role, u.platform_admin, u.tenant_id, tn.name AS tenant_name
       FROM tokens t JOIN users u ON u.id = t.user_id JOIN tenants tn ON tn.id = u.tenant_id
      WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())`,
    [hashToken(token)],
  );
  const row = r.rows[0];
  if (!row) throw new AuthenticationError('invalid, expired or revoked token');
  return {
    userId: Number(row.user_id),
    username: row.username,
    tenantId: Number(row.tenant_id),
    tenantName: row.tenant_name,
    role: row.role,
    platformAdmin: row.platform_admin,
    scopes: row.scopes as Scope[],
    tokenId: Number(row.token_id),
  };
}
