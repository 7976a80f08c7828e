import type { Db } from '../core/db';
import { UnavailableError } from '../core/errors';
import { advisoryUnlock, tryAdvisoryLock } from '../core/stores/locks-store';

/** Key space of these locks (two-int form; migrate's single-bigint lock lives elsewhere). */
const LOCK_SPACE = 724002;

/**
 * A Postgres session advisory lock: the repository write lock while Redis does not answer
 * (docs/decisions/0011-push-durability.md). Held on one pooled connection until released; a
 * crashed holder's connection closes and frees it at once. Tried without blocking (a blocked
 * waiter would pin a connection the holder's hooks may need), with the Redis lock's backoff.
 */
export async function acquireAdvisoryLock(db: Db, key: string, what: string, o: { waitMs?: number } = {}): Promise<() => Promise<void>> {
  const deadline = Date.now() + (o.waitMs ?? 120_000);
  let delay = 25;
  for (;;) {
    const client = await db.connect();
    let got: boolean;
    try {
      got = await tryAdvisoryLock(client, LOCK_SPACE, key);
    } catch (err) {
      client.release(err as Error);
      throw err;
    }
    if (got) {
      return async () => {
        try {
          await advisoryUnlock(client, LOCK_SPACE, key);
          client.release();
        } catch (err) {
          client.release(err as Error); // a discarded connection frees its locks too
        }
      };
    }
    client.release();
    if (Date.now() > deadline) throw new UnavailableError(`${what} is busy (locked by another writer); try again`, 5);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 500);
  }
}
