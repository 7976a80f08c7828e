import type { Queryable, Row } from '../db';

/**
 * The tenants aggregate's SQL: `tenants`, their `users`, the users' API `tokens` and repository
 * grants to users (`permissions`, the collaborators). Revocation of a token and its descendants
 * lives here; the tombstones in Redis are the caller's.
 */

/** A new tenant; a taken name is a unique violation (the caller maps it). */
export async function insertTenant(q: Queryable, name: string): Promise<{ id: number; name: string }> {
  const r = await q.query('INSERT INTO tenants (name) VALUES ($1) RETURNING id, name', [name]);
  return { id: Number(r.rows[0].id), name: r.rows[0].name as string };
}

/** Creates the tenant unless it exists; answers its id either way. */
export async function ensureTenant(q: Queryable, name: string): Promise<number> {
  await q.query('INSERT INTO tenants (name) VALUES ($1) ON CONFLICT (name) DO NOTHING', [name]);
  return Number((await q.query('SELECT id FROM tenants WHERE name = $1', [name])).rows[0].id);
}

/** A tenant by name. */
export async function findTenantByName(q: Queryable, name: string): Promise<{ id: number; name: string } | undefined> {
  const r = await q.query('SELECT id, name FROM tenants WHERE name = $1', [name]);
  return r.rows[0] && { id: Number(r.rows[0].id), name: r.rows[0].name };
}

/** A new user of a tenant; answers its id (a taken username is a unique violation: names are global). */
export async function insertUser(q: Queryable, u: { tenantId: number; username: string; role: string; platformAdmin?: boolean }): Promise<number> {
  const r = u.platformAdmin
    ? await q.query(`INSERT INTO users (tenant_id, username, role, platform_admin) VALUES ($1, $2, $3, true) RETURNING id`, [u.tenantId, u.username, u.role])
    : await q.query('INSERT INTO users (tenant_id, username, role) VALUES ($1, $2, $3) RETURNING id', [u.tenantId, u.username, u.role]);
  return Number(r.rows[0].id);
}

/** A user's id, tenant and whether they are a platform admin, by username. */
export async function findUserByName(q: Queryable, username: string): Promise<{ id: string; tenant_id: string; platform_admin: boolean } | undefined> {
  return (await q.query('SELECT id, tenant_id, platform_admin FROM users WHERE username = $1', [username])).rows[0];
}

/** A user with their tenant's name (`tenant_name`), as a principal is built from; by username. */
export async function findUserWithTenant(q: Queryable, username: string): Promise<Row | undefined> {
  const r = await q.query(
    `SELECT u.id AS user_id, u.username, u.role, u.platform_admin, u.tenant_id, tn.name AS tenant_name
       FROM users u JOIN tenants tn ON tn.id = u.tenant_id WHERE u.username = $1`,
    [username],
  );
  return r.rows[0];
}

/** A new API token (stored as its hash); answers its id. */
export async function insertToken(q: Queryable, t: { tenantId: number | string; userId: number | string; tokenHash: Buffer; scopes: string[]; expiresAt?: string | Date | null; parentTokenId?: number | null }): Promise<number> {
  const r = await q.query('INSERT INTO tokens (tenant_id, user_id, token_hash, scopes, expires_at, parent_token_id) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id', [
    t.tenantId,
    t.userId,
    t.tokenHash,
    t.scopes,
    t.expiresAt ?? null,
    t.parentTokenId ?? null,
  ]);
  return Number(r.rows[0].id);
}

/**
 * Whether the token is unrevoked, holding its row FOR SHARE until the transaction ends, so a
 * concurrent revocation waits for a child token being created under it (and then sees it).
 */
export async function lockLiveToken(q: Queryable, id: number): Promise<boolean> {
  return ((await q.query('SELECT 1 FROM tokens WHERE id = $1 AND revoked_at IS NULL FOR SHARE', [id])).rowCount ?? 0) > 0;
}

/** Whether an unrevoked token has this hash. */
export async function isLiveTokenHash(q: Queryable, tokenHash: Buffer): Promise<boolean> {
  return ((await q.query('SELECT 1 FROM tokens WHERE token_hash = $1 AND revoked_at IS NULL', [tokenHash])).rowCount ?? 0) > 0;
}

/** An unrevoked token's id, tenant, user and whether its user is a platform admin. */
export async function findLiveToken(q: Queryable, id: number): Promise<{ id: string; tenant_id: string; user_id: string; platform_admin: boolean } | undefined> {
  const r = await q.query('SELECT t.id, t.tenant_id, t.user_id, u.platform_admin FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.id = $1 AND t.revoked_at IS NULL', [id]);
  return r.rows[0];
}

/**
 * Revokes a token and every token derived from it (children, their children …); answers the
 * descendants' ids. Call in a transaction: the descendants are found by a statement after the
 * parent's row is locked, so it sees every child whose creation committed meanwhile.
 */
export async function revokeTokenTree(q: Queryable, id: number): Promise<number[]> {
  await q.query('UPDATE tokens SET revoked_at = now() WHERE id = $1', [id]);
  const descendants = await q.query<{ id: string }>(
    `WITH RECURSIVE d AS (
       SELECT id FROM tokens WHERE parent_token_id = $1
       UNION SELECT t.id FROM tokens t JOIN d ON t.parent_token_id = d.id
     )
     UPDATE tokens SET revoked_at = now() FROM d WHERE tokens.id = d.id AND tokens.revoked_at IS NULL RETURNING tokens.id`,
    [id],
  );
  return descendants.rows.map((d) => Number(d.id));
}

/** The live (unrevoked, unexpired) token with this hash, with its user and tenant name. */
export async function findLiveTokenByHash(q: Queryable, tokenHash: Buffer): Promise<Row | undefined> {
  const r = await q.query(
    `SELECT t.id AS token_id, t.scopes, t.expires_at, u.id AS user_id, u.username, u.role, u.platform_admin, u.tenant_id, tn.name AS tenant_name
       FROM tokens t JOIN users u ON u.id = t.user_id JOIN tenants tn ON tn.id = u.tenant_id
      WHERE t.token_hash = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())`,
    [tokenHash],
  );
  return r.rows[0];
}

/** When a user's live (unrevoked, unexpired) token ends (null: never); undefined when it is not live. */
export async function liveTokenExpiry(q: Queryable, id: number, userId: number | string): Promise<{ expires_at: Date | null } | undefined> {
  const r = await q.query(`SELECT expires_at FROM tokens WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`, [id, userId]);
  return r.rows[0];
}

/** A user's explicit grant on a repository (`permissions.access`), if any. */
export async function findPermission(q: Queryable, tenantId: number, repoId: number, userId: number): Promise<string | undefined> {
  const g = await q.query(`SELECT access FROM permissions WHERE tenant_id = $1 AND repo_id = $2 AND user_id = $3`, [tenantId, repoId, userId]);
  return g.rows[0]?.access;
}

/** Grants (or changes) a user's explicit access to a repository. */
export async function upsertCollaborator(q: Queryable, tenantId: number, repoId: number, userId: number | string, access: string): Promise<void> {
  await q.query(
    `INSERT INTO permissions (tenant_id, repo_id, user_id, access) VALUES ($1, $2, $3, $4)
     ON CONFLICT (tenant_id, repo_id, user_id) DO UPDATE SET access = $4`,
    [tenantId, repoId, userId, access],
  );
}

/**
 * A page of a user's live (unrevoked, unexpired) tokens by id after `after` (`GET /api/v1/tokens`):
 * never the hash. No last-use time is stored (the gateway caches tokens; writing one per request
 * would put a write on every read).
 */
export async function listLiveTokensOfUser(q: Queryable, userId: number, o: { after: number; limit: number }): Promise<{ id: string; scopes: string[]; created_at: Date; expires_at: Date | null; parent_token_id: string | null }[]> {
  const r = await q.query(
    `SELECT id, scopes, created_at, expires_at, parent_token_id FROM tokens
      WHERE user_id = $1 AND id > $2 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
      ORDER BY id LIMIT $3`,
    [userId, o.after, o.limit],
  );
  return r.rows;
}

/**
 * The reference copy of a tenant in a shard database (ADR 0025: `tenants` is on every database, so
 * tenant-owned tables keep their key to it and their joins for its name). Same id and name as the
 * global row; writing it again is a no-op.
 */
export async function insertTenantCopy(q: Queryable, t: { id: number; name: string; createdAt?: Date }): Promise<void> {
  await q.query('INSERT INTO tenants (id, name, created_at) OVERRIDING SYSTEM VALUE VALUES ($1, $2, coalesce($3, now())) ON CONFLICT (id) DO NOTHING', [t.id, t.name, t.createdAt ?? null]);
}

/** Every tenant of the global directory (id order), to bring the reference copies up to date. */
export async function listTenants(q: Queryable): Promise<{ id: number; name: string; createdAt: Date }[]> {
  const r = await q.query<{ id: string; name: string; created_at: Date }>('SELECT id, name, created_at FROM tenants ORDER BY id');
  return r.rows.map((x) => ({ id: Number(x.id), name: x.name, createdAt: x.created_at }));
}

/**
 * A repository's grants by user id (ADR 0025: `permissions` is in the tenant's shard, `users` in the
 * global database, so the names come from there: `usernamesByIds`).
 */
export async function listGrants(q: Queryable, tenantId: number, repoId: number): Promise<{ userId: number; access: string }[]> {
  const r = await q.query<{ user_id: string; access: string }>('SELECT user_id, access FROM permissions WHERE tenant_id = $1 AND repo_id = $2', [tenantId, repoId]);
  return r.rows.map((row) => ({ userId: Number(row.user_id), access: row.access }));
}

/** Usernames by user id (global database). */
export async function usernamesByIds(q: Queryable, ids: number[]): Promise<Map<number, string>> {
  if (ids.length === 0) return new Map();
  const r = await q.query<{ id: string; username: string }>('SELECT id, username FROM users WHERE id = ANY($1::bigint[])', [ids]);
  return new Map(r.rows.map((row) => [Number(row.id), row.username]));
}

/** Removes a user's explicit access to a repository by user id (nothing when there is none). */
export async function deleteGrant(q: Queryable, tenantId: number, repoId: number, userId: number): Promise<void> {
  await q.query('DELETE FROM permissions WHERE tenant_id = $1 AND repo_id = $2 AND user_id = $3', [tenantId, repoId, userId]);
}
