import type { Queryable } from '../db';

/** The SQL of `signing_keys`: the JWT issuer's key ring (global, shared by every gateway). */

export interface SigningKeyRow {
  kid: string;
  public_jwk: Record<string, unknown>;
  private_enc: string;
  created_at: Date;
  retired_at: Date | null;
}

/** The keys in use: current ones and those retired less than `overlapSeconds` ago. */
export async function listUsableSigningKeys(q: Queryable, overlapSeconds: number): Promise<SigningKeyRow[]> {
  const r = await q.query(
    `SELECT kid, public_jwk, private_enc, created_at, retired_at FROM signing_keys
      WHERE retired_at IS NULL OR retired_at > now() - make_interval(secs => $1)`,
    [overlapSeconds],
  );
  return r.rows;
}

/** Holds the ring's rotation lock until the transaction ends (one rotation at a time across gateways). */
export async function lockSigningKeyRotation(q: Queryable): Promise<void> {
  await q.query('SELECT pg_advisory_xact_lock(724003)');
}

/** The newest unretired key's kid and creation time. */
export async function currentSigningKey(q: Queryable): Promise<{ kid: string; created_at: Date } | undefined> {
  return (await q.query('SELECT kid, created_at FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1')).rows[0];
}

/** Retires every current key and adds `key` as the one current key. */
export async function replaceCurrentSigningKey(q: Queryable, key: { kid: string; alg: string; publicJwk: object; privateEnc: string }): Promise<void> {
  await q.query('UPDATE signing_keys SET retired_at = now() WHERE retired_at IS NULL');
  await q.query('INSERT INTO signing_keys (kid, alg, public_jwk, private_enc) VALUES ($1, $2, $3, $4)', [key.kid, key.alg, key.publicJwk, key.privateEnc]);
}
