import { randomBytes } from 'node:crypto';
import { UnavailableError } from './errors';
import type { Redis } from './redis';

// Deletes or extends the lock only if it still holds our token (one round trip, atomic).
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const EXTEND = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

export interface RedisLockOptions {
  /** Lease of the lock; renewed at a third of it while held, so a crashed holder frees it within this. Default 30 s. */
  leaseMs?: number;
  /** How long to wait for the lock before giving up with UnavailableError. Default 120 s. */
  waitMs?: number;
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
  while ((await redis.set(key, token, 'PX', lease, 'NX')) !== 'OK') {
    if (Date.now() > deadline) throw new UnavailableError(`${what} is busy (locked by another writer); try again`, 5);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 500);
  }
  const renew = setInterval(() => {
    redis.eval(EXTEND, 1, key, token, String(lease)).catch(() => undefined);
  }, Math.floor(lease / 3));
  return async () => {
    clearInterval(renew);
    await redis.eval(RELEASE, 1, key, token).catch(() => undefined);
  };
}
