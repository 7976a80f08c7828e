import { Redis } from 'ioredis';

export type { Redis };

/**
 * A Redis client that fails fast instead of queueing commands forever while Redis is down.
 * `commandTimeoutMs` also bounds every command while Redis is up but stalled (no reply).
 */
export function createRedis(url: string, o: { commandTimeoutMs?: number } = {}): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: 2, enableOfflineQueue: true, lazyConnect: false, commandTimeout: o.commandTimeoutMs });
  redis.on('error', () => undefined); // reconnects by itself; callers see command errors
  return redis;
}

/** Redis stream key of a step's live log. */
export function logStreamKey(runId: string): string {
  return `dotgit:runlog:${runId}`;
}

/** A Redis stream entry's flat `[field, value, field, value, …]` list as an object. */
export function streamFields(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]] = flat[i + 1];
  return out;
}

/** A repository's generation: bumped whenever its refs may have changed; keys the git-server's advertisement cache. */
export function repoGenerationKey(repo: string): string {
  return `dotgit:repo-gen:${repo}`;
}
