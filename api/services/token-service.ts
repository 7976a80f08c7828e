import type { Db } from '../../core/db';
import { inTransaction } from '../../core/db';
import { InputError, NotAllowedError, NotFoundError } from '../../core/errors';
import { assertValidName } from '../../core/names';
import { atLeast, scopeCeiling, type Principal } from '../../core/principal';
import type { Redis } from '../../core/redis';
import { markTokenRevoked } from '../../core/token-revocation';
import { SCOPES, generateToken, hashToken, type Scope } from '../../core/tokens';
import { requireScope } from '../authz';
import { audit } from './audit';

export class TokenService {
  /** `redis` receives revocation tombstones, which end tokens the gateway holds in its cache. */
  constructor(
    private readonly db: Db,
    private readonly redis: Redis,
  ) {}

  /**
   * A token for the caller or, for a tenant admin, for a user of their tenant. A new token never
   * carries more than the token that made it, so a read token cannot mint a write token.
   */
  async createToken(principal: Principal, body: { username?: unknown; scopes?: unknown; expiresAt?: unknown }, requestId?: string) {
    const scopes = body.scopes;
    if (!Array.isArray(scopes) || scopes.length === 0 || !scopes.every((s) => (SCOPES as readonly string[]).includes(s))) {
      throw new InputError(`scopes must be a non-empty array of ${SCOPES.join(', ')}`);
    }
    const wanted = [...new Set(scopes as Scope[])];
    if (!atLeast(scopeCeiling(principal.scopes), scopeCeiling(wanted))) {
      throw new NotAllowedError('a token cannot be given more scopes than the token that creates it');
    }
    let expiresAt: Date | null = null;
    if (body.expiresAt !== undefined && body.expiresAt !== null) {
      expiresAt = new Date(String(body.expiresAt));
      if (Number.isNaN(expiresAt.getTime())) throw new InputError('expiresAt must be an ISO 8601 date-time');
      if (expiresAt.getTime() <= Date.now()) throw new InputError('expiresAt must be in the future');
    }
    const username = body.username === undefined ? principal.username : assertValidName('username', body.username);
    const u = await this.db.query('SELECT id, tenant_id, platform_admin FROM users WHERE username = $1', [username]);
    const user = u.rows[0];
    const self = username === principal.username;
    if (!self) {
      requireScope(principal, 'admin');
      // A tenant admin manages the tenant's users, never a platform admin who happens to be in it.
      const sameTenantAdmin = user && !user.platform_admin && Number(user.tenant_id) === principal.tenantId && principal.role === 'admin';
      if (!principal.platformAdmin && !sameTenantAdmin) {
        if (!user || Number(user.tenant_id) !== principal.tenantId) throw new NotFoundError(`user ${username} not found`);
        throw new NotAllowedError('only an admin of the tenant may create tokens for other users');
      }
    }
    if (!user) throw new NotFoundError(`user ${username} not found`);
    const token = generateToken();
    return inTransaction(this.db, async (c) => {
      const r = await c.query(
        'INSERT INTO tokens (tenant_id, user_id, token_hash, scopes, expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING id',
        [user.tenant_id, user.id, hashToken(token), wanted, expiresAt],
      );
      await audit(c, { tenantId: Number(user.tenant_id), actor: principal.username, action: 'token.create', target: username, detail: { scopes: wanted }, requestId });
      return { id: Number(r.rows[0].id), token, scopes: wanted, expiresAt };
    });
  }

  /**
   * Revocation takes effect at once: the gateway checks the Redis tombstone on every request (in
   * the rate-limit round trip), and on a cache miss reads `revoked_at` from Postgres.
   */
  async revokeToken(principal: Principal, idText: string, requestId?: string): Promise<void> {
    const id = Number(idText);
    if (!Number.isSafeInteger(id) || id <= 0) throw new InputError('token id must be a positive integer');
    const r = await this.db.query(
      'SELECT t.id, t.tenant_id, t.user_id, u.platform_admin FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.id = $1 AND t.revoked_at IS NULL',
      [id],
    );
    const row = r.rows[0];
    const own = row && Number(row.user_id) === principal.userId;
    const admin =
      row && (principal.platformAdmin || (principal.role === 'admin' && !row.platform_admin && Number(row.tenant_id) === principal.tenantId));
    if (!row || (!own && !admin)) throw new NotFoundError(`token ${id} not found`);
    // Revoking is a write: a read token may only end itself.
    if (id !== principal.tokenId) requireScope(principal, own ? 'write' : 'admin');
    await inTransaction(this.db, async (c) => {
      await c.query('UPDATE tokens SET revoked_at = now() WHERE id = $1', [id]);
      await audit(c, { tenantId: Number(row.tenant_id), actor: principal.username, action: 'token.revoke', target: String(id), requestId });
      // Before the commit: if Redis does not take the tombstone, nothing is revoked and the caller
      // gets an error, rather than a 204 while cached copies keep working.
      await markTokenRevoked(this.redis, id);
    });
  }
}
