import { Redis } from 'ioredis';

export type { Redis };

/** A Redis client that fails fast instead of queueing commands forever while Redis is down. */
export function createRedis(url: string): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: 2, enableOfflineQueue: true, lazyConnect: false });
  redis.on('error', () => undefined); // reconnects by itself; callers see command errors
  return redis;
}

/** Redis stream key of a step's live log. */
export function logStreamKey(runId: string): string {
  return `dotgit:runlog:${runId}`;
}
