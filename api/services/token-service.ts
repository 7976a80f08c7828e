import { z } from 'zod';
import { inGlobalTransactionAudited } from '../../core/shard-audit';
import type { ShardRouter } from '../../core/shard-router';
import { AuthenticationError, InputError, NotAllowedError, NotFoundError } from '../../core/errors';
import { assertValidName } from '../../core/names';
import type { Principal } from '../../core/principal';
import type { Redis } from '../../core/redis';
import { markTokensRevoked } from '../../core/token-revocation';
import { DerivationError, SCOPES, derivedExpiry, generateToken, hashToken, type Scope } from '../../core/tokens';
import { requireScope } from '../authz';
import { parseBody } from '../validation';
import { findLiveToken, findUserByName, insertToken, listLiveTokensOfUser, lockLiveToken, revokeTokenTree } from '../../core/stores/tenants-store';
import { nextAfter, pageOf } from '../paging';

const EXPIRES_MESSAGE = 'expiresAt must be an ISO 8601 date-time with a time zone (2030-01-31T12:00:00Z) or a date (2030-01-31)';
/**
 * Only ISO 8601 text: `new Date(String(x))` would take an array (`["2999-01-01"]`), a NUL-suffixed
 * string or a bare number. null or absent: the default (the creating credential's own expiry).
 */
const expiryBody = z.object({
  expiresAt: z.union([z.iso.datetime({ offset: true }), z.iso.date()], { error: EXPIRES_MESSAGE }).nullish(),
});

export class TokenService {
  /** `redis` receives revocation tombstones, which end tokens the gateway holds in its cache. */
  constructor(
    /** Tokens and users are global; their audit entries go to the tenant's shard (ADR 0025). */
    private readonly router: ShardRouter,
    private readonly redis: Redis,
  ) {}

  /**
   * A token for the caller or, for a tenant admin, for a user of their tenant, derived from the
   * credential that asks (docs/decisions/0009-token-derivation.md): only a credential that can write
   * creates tokens, never with more scopes than it has, never outliving it (the child's expiry
   * defaults to the parent's); the child records its parent, so revoking the parent ends it.
   */
  async createToken(principal: Principal, body: { username?: unknown; scopes?: unknown; expiresAt?: unknown }, requestId?: string) {
    const scopes = body.scopes;
    if (!Array.isArray(scopes) || scopes.length === 0 || !scopes.every((s) => (SCOPES as readonly string[]).includes(s))) {
      throw new InputError(`scopes must be a non-empty array of ${SCOPES.join(', ')}`);
    }
    const wanted = [...new Set(scopes as Scope[])];
    let asked: Date | null = null;
    const { expiresAt: askedText } = parseBody(expiryBody, body);
    if (askedText) {
      asked = new Date(askedText);
      if (Number.isNaN(asked.getTime())) throw new InputError(EXPIRES_MESSAGE);
      if (asked.getTime() <= Date.now()) throw new InputError('expiresAt must be in the future');
    }
    let expiresAt: Date | null;
    try {
      expiresAt = derivedExpiry({ scopes: principal.scopes, expiresAt: principal.expiresAt ?? null }, wanted, asked);
    } catch (err) {
      if (err instanceof DerivationError) throw err.rule === 'scope' ? new NotAllowedError(err.message) : new InputError(err.message);
      throw err;
    }
    const username = body.username === undefined ? principal.username : assertValidName('username', body.username);
    const user = await findUserByName(this.router.global, username);
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
    const parentId = principal.tokenId || null;
    return inGlobalTransactionAudited(this.router, async (c) => {
      if (parentId !== null) {
        // FOR SHARE: a revocation of the parent waits for this insert to commit and then revokes
        // the new child too; one that committed first makes this check fail.
        if (!(await lockLiveToken(c, parentId))) throw new AuthenticationError('invalid, expired or revoked token');
      }
      const id = await insertToken(c, { tenantId: user.tenant_id, userId: user.id, tokenHash: hashToken(token), scopes: wanted, expiresAt, parentTokenId: parentId });
      return {
        value: { id, token, scopes: wanted, expiresAt },
        audit: [{ tenantId: Number(user.tenant_id), actor: principal.username, action: 'token.create', target: username, detail: { scopes: wanted, expiresAt, parentTokenId: parentId }, requestId }],
      };
    });
  }

  /**
   * `GET /api/v1/tokens`: the caller's own live tokens, by id, a page at a time; what each may do and
   * until when, never the secret (only its hash is stored). Any scope may list its owner's tokens.
   */
  async list(principal: Principal, query: Record<string, unknown>) {
    const { after, limit } = pageOf(query);
    const rows = await listLiveTokensOfUser(this.router.global, principal.userId, { after, limit });
    const tokens = rows.map((t) => ({
      id: Number(t.id),
      scopes: t.scopes as Scope[],
      createdAt: t.created_at,
      expiresAt: t.expires_at,
      parentTokenId: t.parent_token_id === null ? null : Number(t.parent_token_id),
      current: Number(t.id) === principal.tokenId,
    }));
    return { tokens, next: nextAfter(tokens.map((t) => t.id), limit) };
  }

  /**
   * Revocation takes effect at once, for the token and every token derived from it (children,
   * grandchildren…): the gateway checks each one's Redis tombstone on every request (in the
   * rate-limit round trip), and on a cache miss reads `revoked_at` from Postgres.
   */
  async revokeToken(principal: Principal, idText: string, requestId?: string): Promise<void> {
    const id = Number(idText);
    if (!Number.isSafeInteger(id) || id <= 0) throw new InputError('token id must be a positive integer');
    const row = await findLiveToken(this.router.global, id);
    const own = row && Number(row.user_id) === principal.userId;
    const admin =
      row && (principal.platformAdmin || (principal.role === 'admin' && !row.platform_admin && Number(row.tenant_id) === principal.tenantId));
    if (!row || (!own && !admin)) throw new NotFoundError(`token ${id} not found`);
    // Revoking is a write: a read token may only end itself.
    if (id !== principal.tokenId) requireScope(principal, own ? 'write' : 'admin');
    await inGlobalTransactionAudited(this.router, async (c) => {
      // The descendants are found after the parent's row is locked, so every child whose creation
      // committed meanwhile is seen (createToken holds the parent FOR SHARE while it inserts).
      const ended = await revokeTokenTree(c, id);
      // Before the commit: if Redis does not take the tombstones, nothing is revoked and the caller
      // gets an error, rather than a 204 while cached copies keep working.
      await markTokensRevoked(this.redis, [id, ...ended]);
      // Last: the audit chain's lock is held only while the transaction commits, not across Redis.
      return { value: undefined, audit: [{ tenantId: Number(row.tenant_id), actor: principal.username, action: 'token.revoke', target: String(id), detail: { descendants: ended }, requestId }] };
    });
  }
}
