import { Redis, type RedisOptions } from 'ioredis';
import { parseRedisUrl, RedisUrlError } from './redis-url';

export type { Redis };

/**
 * A Redis client that fails fast instead of queueing commands forever while Redis is down.
 * `commandTimeoutMs` also bounds every command while Redis is up but stalled (no reply).
 *
 * `url` is a `REDIS_URL` (core/redis-url.ts): with `redis-sentinel://…` the client asks the
 * sentinels for the master and, when its connection drops, asks again, so it follows a failover
 * without a restart (ADR 0016). Its duplicates (blocking stream readers) do the same.
 */
/**
 * `autoPipelining`: commands issued in the same event-loop turn go out in one write (ioredis
 * `enableAutoPipelining`; each keeps its own reply and error). For a process whose concurrent
 * requests each make one call (the gateway's rate-limit script): fewer socket writes per request.
 */
export function createRedis(url: string, o: { commandTimeoutMs?: number; autoPipelining?: boolean } = {}): Redis {
  const common: RedisOptions = { maxRetriesPerRequest: 2, enableOfflineQueue: true, lazyConnect: false, commandTimeout: o.commandTimeoutMs, enableAutoPipelining: o.autoPipelining ?? false };
  const target = parseRedisUrl(url);
  const redis =
    target.kind === 'server'
      ? new Redis(url, common)
      : new Redis({
          ...common,
          sentinels: target.sentinels,
          name: target.masterName,
          username: target.username,
          password: target.password,
          // ioredis backs off up to 5 s between reconnects; after a failover the new master should be
          // found within a second of the sentinels naming it (RTO goal 10 s), so never wait longer.
          retryStrategy: (times) => Math.min(50 * 2 ** (times - 1), 1000),
          // A master demoted while we stayed connected (it came back as a replica) refuses writes:
          // reconnect, which asks the sentinels again, and resend the command.
          reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 2 : false),
        });
  redis.on('error', () => undefined); // reconnects by itself; callers see command errors
  return redis;
}

/** Whether this client finds its master through Sentinel (so there are replicas a failover may promote). */
export function followsSentinel(redis: Redis): boolean {
  return (redis.options.sentinels?.length ?? 0) > 0;
}

/**
 * Start-up check of a `redis-sentinel://` REDIS_URL: the sentinels that answer must know the master
 * name, or a client would ask them forever (ioredis retries an unknown name like an unreachable
 * sentinel). Throws RedisUrlError naming what they monitor instead. Sentinels that cannot be
 * reached are not an error here: Redis being down degrades the platform, it does not stop it.
 */
export async function assertSentinelMaster(url: string, timeoutMs = 2000): Promise<void> {
  const target = parseRedisUrl(url);
  if (target.kind !== 'sentinel') return;
  const answers = await Promise.all(target.sentinels.map((s) => askSentinel(s, target.masterName, timeoutMs)));
  const reached = answers.filter((a) => a !== undefined);
  if (reached.length === 0 || reached.some((a) => a.knows)) return;
  const monitored = [...new Set(reached.flatMap((a) => a.masters))];
  throw new RedisUrlError(
    `REDIS_URL: no Redis Sentinel knows a master named "${target.masterName}" (asked ${target.sentinels.map((s) => `${s.host}:${s.port}`).join(', ')}; ` +
      `they monitor ${monitored.length ? monitored.map((n) => `"${n}"`).join(', ') : 'no master'})`,
  );
}

async function askSentinel(s: { host: string; port: number }, name: string, timeoutMs: number): Promise<{ knows: boolean; masters: string[] } | undefined> {
  const client = new Redis({ ...s, lazyConnect: true, retryStrategy: () => null, enableOfflineQueue: false, maxRetriesPerRequest: 0, connectTimeout: timeoutMs, commandTimeout: timeoutMs, enableReadyCheck: false });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const addr = await client.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name);
    const masters = (await client.call('SENTINEL', 'MASTERS')) as unknown[];
    return { knows: Array.isArray(addr) && addr.length === 2, masters: masters.map(masterName).filter((n): n is string => Boolean(n)) };
  } catch {
    return undefined;
  } finally {
    client.disconnect();
  }
}

/** `name` of one SENTINEL MASTERS entry: a flat `[field, value, …]` list (RESP2) or a map (RESP3). */
function masterName(entry: unknown): string | undefined {
  if (Array.isArray(entry)) {
    const i = entry.indexOf('name');
    return i >= 0 ? String(entry[i + 1]) : undefined;
  }
  if (entry instanceof Map) return entry.get('name') as string | undefined;
  if (entry && typeof entry === 'object') return (entry as Record<string, string>).name;
  return undefined;
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
