import { randomBytes } from 'node:crypto';
import { UnavailableError } from './errors';
import type { Logger } from './logger';
import { followsSentinel, type Redis } from './redis';

// Deletes or extends the lock only if it still holds our token (one round trip, atomic).
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const EXTEND = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

export interface RedisLockOptions {
  /** Lease of the lock; renewed at a third of it while held, so a crashed holder frees it within this. Default 30 s. */
  leaseMs?: number;
  /** How long to wait for the lock before giving up with UnavailableError. Default 120 s. */
  waitMs?: number;
  /** Told when a lock could not be released at all (it then ends with its lease), or was lost. */
  log?: Pick<Logger, 'warn'>;
  /**
   * With Sentinel: how long a lock just taken waits for a replica to hold it too (WAIT 1). Default
   * 200 ms, at most half the client's command timeout (the git-server's 250 ms: 125 ms), so the
   * answer arrives before the client gives up on it.
   */
  replicaAckMs?: number;
}

/**
 * A lock the master took but no replica acknowledged in time. Not granted: a failover now could
 * promote a replica without it and grant it again. Not an UnavailableError, so the git-server
 * takes its Postgres advisory lock instead, as when Redis does not answer (ADR 0016).
 */
export class LockNotReplicatedError extends Error {
  override readonly name = 'LockNotReplicatedError';
}

/**
 * A lock shared by every process through Redis (SET NX PX with a random token; renewal and release
 * in Lua). Used for one writer per repository across git-server instances.
 *
 * Across a Sentinel failover (ADR 0016): replication is asynchronous, so a lock only the lost master
 * had would be granted again by the promoted replica. With Sentinel the lock is granted only once a
 * replica holds it (WAIT 1); Sentinel promotes the replica with the most replicated data, so the new
 * master has it. A renewal that finds the lock gone (its lease ran out, e.g. a failover slower than
 * the lease) stops renewing and says so.
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
  if (followsSentinel(redis)) await awaitReplica(redis, key, token, o.replicaAckMs ?? Math.min(200, Math.floor((redis.options.commandTimeout ?? 400) / 2)), o.log);
  const renew = setInterval(() => {
    redis.eval(EXTEND, 1, key, token, String(lease)).then(
      (extended) => {
        if (extended !== 0) return;
        clearInterval(renew);
        o.log?.warn({ key }, 'a held Redis lock was gone when renewed (lease ended or lost in a failover); another writer may take it');
      },
      () => undefined,
    );
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

/** WAIT 1: the lock counts only once a replica has it too; otherwise it is given back (LockNotReplicatedError). */
async function awaitReplica(redis: Redis, key: string, token: string, ms: number, log?: Pick<Logger, 'warn'>): Promise<void> {
  let acked: unknown;
  try {
    acked = await redis.call('WAIT', '1', String(ms));
  } catch (err) {
    // No answer (timed out, connection lost): no acknowledgement either.
    releaseInBackground(redis, key, token, log);
    throw new LockNotReplicatedError(`no Redis replica acknowledged the lock ${key}: ${(err as Error).message}`, { cause: err });
  }
  if (Number(acked) >= 1) return;
  releaseInBackground(redis, key, token, log);
  throw new LockNotReplicatedError(`no Redis replica acknowledged the lock ${key} within ${ms} ms`);
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
