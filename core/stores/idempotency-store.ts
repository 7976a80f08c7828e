import type { Queryable } from '../db';
import { deleteBatch } from './prune';

/** The SQL of `idempotency_keys`: a request's claim on an `Idempotency-Key` and its kept answer. */

/** Claims the key for this request; false when a row for it exists already. */
export async function claimIdempotencyKey(q: Queryable, principal: string, key: string, fingerprint: string): Promise<boolean> {
  const claimed = await q.query('INSERT INTO idempotency_keys (principal, key, fingerprint) VALUES ($1, $2, $3) ON CONFLICT (principal, key) DO NOTHING', [principal, key, fingerprint]);
  return claimed.rowCount === 1;
}

/** A key's row: the request's fingerprint and, once answered, its status and sealed answer. */
export async function findIdempotencyKey(q: Queryable, principal: string, key: string): Promise<{ fingerprint: string; status: number | null; response: string | null } | undefined> {
  return (await q.query('SELECT fingerprint, status, response FROM idempotency_keys WHERE principal = $1 AND key = $2', [principal, key])).rows[0];
}

/** Takes over an unanswered claim whose lease (`leaseSeconds`) ran out; false when it is still held or answered. */
export async function takeOverStaleIdempotencyKey(q: Queryable, principal: string, key: string, leaseSeconds: number): Promise<boolean> {
  const takeover = await q.query(
    `UPDATE idempotency_keys SET locked_at = now()
      WHERE principal = $1 AND key = $2 AND status IS NULL AND locked_at < now() - make_interval(secs => $3)`,
    [principal, key, leaseSeconds],
  );
  return takeover.rowCount === 1;
}

/** Keeps the answer (status and sealed body) of a claimed key. */
export async function completeIdempotencyKey(q: Queryable, principal: string, key: string, status: number, sealedResponse: string): Promise<void> {
  await q.query('UPDATE idempotency_keys SET status = $3, response = $4 WHERE principal = $1 AND key = $2', [principal, key, status, sealedResponse]);
}

/** Forgets an unanswered claim. */
export async function releaseIdempotencyKey(q: Queryable, principal: string, key: string): Promise<void> {
  await q.query('DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2 AND status IS NULL', [principal, key]);
}

/** Whether the `idempotency_keys` table exists (it came with migrations/0012). */
export async function idempotencyKeysTableExists(q: Queryable): Promise<boolean> {
  return (await q.query<{ present: boolean }>(`SELECT to_regclass('idempotency_keys') IS NOT NULL AS present`)).rows[0]!.present;
}

/** Deletes up to `batch` keys created more than `olderThanHours` ago; answers how many. */
export function deleteOldIdempotencyKeys(q: Queryable, olderThanHours: number, batch: number): Promise<number> {
  return deleteBatch(q, 'idempotency_keys', 'd.created_at < now() - make_interval(hours => $1)', [olderThanHours], batch);
}
