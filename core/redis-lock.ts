import { randomBytes } from 'node:crypto';
import { UnavailableError } from './errors';
import type { Logger } from './logger';
import type { Redis } from './redis';

// Deletes or extends the lock only if it still holds our token (one round trip, atomic).
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const EXTEND = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

export interface RedisLockOptions {
  /** Lease of the lock; renewed at a third of it while held, so a crashed holder frees it within this. Default 30 s. */
  leaseMs?: number;
  /** How long to wait for the lock before giving up with UnavailableError. Default 120 s. */
  waitMs?: number;
  /** Told when a lock could not be released at all (it then ends with its lease). */
  log?: Pick<Logger, 'warn'>;
}

/**
 * A lock shared by every process through Redis (SET NX PX with a random token; renewal and release
 * in Lua). Used for one writer per repository across git-server instances.
 */
export async function acquireRedisLock(redis: Redis, key: string, what: string, o: RedisLockOptions = {}): Promise<() => Promise<void>> {
  const lease = o.leaseMs ?? 30_000;
  const deadline = Date.now() + (o.waitMs ?? 120_000);
  const token = randomBytes(16).toString('hex');
  let delay = 25;
  const tryLock = () =>
    redis.set(key, token, 'PX', lease, 'NX').catch((err: unknown) => {
      // A SET that timed out here may still have taken the lock in Redis: free it (in the background),
      // or every other instance waits out the lease for a holder that never came.
      releaseInBackground(redis, key, token, o.log);
      throw err;
    });
  while ((await tryLock()) !== 'OK') {
    if (Date.now() > deadline) throw new UnavailableError(`${what} is busy (locked by another writer); try again`, 5);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 500);
  }
  const renew = setInterval(() => {
    redis.eval(EXTEND, 1, key, token, String(lease)).catch(() => undefined);
  }, Math.floor(lease / 3));
  return async () => {
    clearInterval(renew);
    try {
      await redis.eval(RELEASE, 1, key, token);
    } catch {
      // Left as is, the key would keep every writer of the repository waiting for the rest of the
      // lease (up to 30 s). The caller goes on; the release is retried briefly, then the lease ends it.
      releaseInBackground(redis, key, token, o.log);
    }
  };
}

/** Pauses before each retry of a failed release: about 8 s in all, well inside the default lease. */
const RELEASE_RETRY_DELAYS_MS = [250, 500, 1000, 2000, 4000];

function releaseInBackground(redis: Redis, key: string, token: string, log?: Pick<Logger, 'warn'>): void {
  void (async () => {
    let last: unknown;
    for (const ms of RELEASE_RETRY_DELAYS_MS) {
      await new Promise((r) => setTimeout(r, ms).unref());
      try {
        await redis.eval(RELEASE, 1, key, token);
        return;
      } catch (err) {
        last = err;
      }
    }
    log?.warn({ err: last, key }, 'could not release a Redis lock; it ends with its lease');
  })();
}
