import type { Queryable, Row } from '../db';

/**
 * The web console's sign-in state (ADR 0032): `console_sessions` (an opaque cookie's hash → the API
 * token it stands for, and the session's CSRF token) and `console_signin_codes` (one-time links).
 * A session or code is only as live as its token: every lookup joins through `tokens`.
 */

/** A new session for a live token; expired sessions are swept at the same time (sign-ins are rare). */
export async function insertConsoleSession(q: Queryable, s: { idHash: Buffer; tokenId: number; csrf: string; ttlSeconds: number }): Promise<Date> {
  await q.query('DELETE FROM console_sessions WHERE expires_at < now()');
  const r = await q.query(
    `INSERT INTO console_sessions (id_hash, token_id, csrf, expires_at) VALUES ($1, $2, $3, now() + make_interval(secs => $4)) RETURNING expires_at`,
    [s.idHash, s.tokenId, s.csrf, s.ttlSeconds],
  );
  return r.rows[0].expires_at as Date;
}

/**
 * The live session with this hash, with its token's user and tenant (the columns
 * findLiveTokenByHash answers) plus `csrf` and `session_expires_at`; undefined when the session is
 * unknown or expired or its token revoked or expired.
 */
export async function findLiveConsoleSession(q: Queryable, idHash: Buffer): Promise<Row | undefined> {
  const r = await q.query(
    `SELECT s.csrf, s.expires_at AS session_expires_at, t.id AS token_id, t.scopes, t.expires_at,
            u.id AS user_id, u.username, u.role, u.platform_admin, u.tenant_id, tn.name AS tenant_name
       FROM console_sessions s JOIN tokens t ON t.id = s.token_id JOIN users u ON u.id = t.user_id JOIN tenants tn ON tn.id = u.tenant_id
      WHERE s.id_hash = $1 AND s.expires_at > now() AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())`,
    [idHash],
  );
  return r.rows[0];
}

/** Ends a session (sign-out). */
export async function deleteConsoleSession(q: Queryable, idHash: Buffer): Promise<void> {
  await q.query('DELETE FROM console_sessions WHERE id_hash = $1', [idHash]);
}

/** A one-time sign-in code for the live token with this hash; false when there is no such token. */
export async function insertSigninCode(q: Queryable, c: { codeHash: Buffer; tokenHash: Buffer; ttlSeconds: number }): Promise<boolean> {
  await q.query('DELETE FROM console_signin_codes WHERE expires_at < now()');
  const r = await q.query(
    `INSERT INTO console_signin_codes (code_hash, token_id, expires_at)
     SELECT $1, id, now() + make_interval(secs => $3) FROM tokens WHERE token_hash = $2 AND revoked_at IS NULL`,
    [c.codeHash, c.tokenHash, c.ttlSeconds],
  );
  return (r.rowCount ?? 0) > 0;
}

/**
 * Uses a sign-in code: deleted whatever happens next (single use, even when two requests race),
 * answering its token's id when it had not expired.
 */
export async function takeSigninCode(q: Queryable, codeHash: Buffer): Promise<number | undefined> {
  const r = await q.query('DELETE FROM console_signin_codes WHERE code_hash = $1 RETURNING token_id, expires_at > now() AS live', [codeHash]);
  const row = r.rows[0];
  return row?.live ? Number(row.token_id) : undefined;
}
