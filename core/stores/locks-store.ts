import type { Queryable } from '../db';

/** Postgres session advisory locks (two-int form: a key space and the text key's hash), on a connection the caller holds. */

/** Takes the lock without waiting; false when another session holds it. */
export async function tryAdvisoryLock(q: Queryable, space: number, key: string): Promise<boolean> {
  return (await q.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok', [space, key])).rows[0].ok;
}

/** Releases a lock this session holds. */
export async function advisoryUnlock(q: Queryable, space: number, key: string): Promise<void> {
  await q.query('SELECT pg_advisory_unlock($1, hashtext($2))', [space, key]);
}

/** Waits for the transaction-scoped lock `key` (one-int form); it is released when the transaction ends. */
export async function advisoryXactLock(q: Queryable, key: number): Promise<void> {
  await q.query('SELECT pg_advisory_xact_lock($1)', [key]);
}
