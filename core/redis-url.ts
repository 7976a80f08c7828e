/**
 * What `REDIS_URL` names: one Redis server (`redis://`, `rediss://`, as ioredis reads them), or a
 * master found through Redis Sentinel:
 *
 *   redis-sentinel://[[user]:password@]host[:port][,host[:port]…]/<master name>
 *
 * (port 26379 when left out). The password, if any, is the data nodes' (`requirepass`); sentinels are
 * asked without one. Parsed by hand: WHATWG URLs hold one host only.
 */
export type RedisTarget =
  | { kind: 'server'; url: string }
  | { kind: 'sentinel'; sentinels: Array<{ host: string; port: number }>; masterName: string; username?: string; password?: string };

export const SENTINEL_SCHEME = 'redis-sentinel:';
const DEFAULT_SENTINEL_PORT = 26379;

/** Thrown for a `REDIS_URL` that cannot be used; the message says what is wrong. */
export class RedisUrlError extends Error {}

export function parseRedisUrl(url: string): RedisTarget {
  // Anything else is handed to ioredis as before (redis://, rediss://).
  if (!url.toLowerCase().startsWith(`${SENTINEL_SCHEME}//`)) return { kind: 'server', url };
  const rest = url.slice(SENTINEL_SCHEME.length + 2);
  const slash = rest.indexOf('/');
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  const masterName = decodeURIComponent(slash < 0 ? '' : rest.slice(slash + 1));
  if (!masterName || masterName.includes('/') || /[\s?#]/.test(masterName)) {
    throw new RedisUrlError('REDIS_URL redis-sentinel://host:port,…/<master name>: the master name is missing or has / ? # or spaces');
  }
  const at = authority.lastIndexOf('@');
  const userinfo = at < 0 ? undefined : authority.slice(0, at);
  const hosts = (at < 0 ? authority : authority.slice(at + 1)).split(',');
  const sentinels = hosts.map((h) => {
    const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(h);
    const port = m?.[2] === undefined ? DEFAULT_SENTINEL_PORT : Number(m[2]);
    if (!m || port < 1 || port > 65535) throw new RedisUrlError(`REDIS_URL: sentinel address "${h}" is not host[:port]`);
    return { host: m[1].replace(/^\[|\]$/g, ''), port };
  });
  let username: string | undefined;
  let password: string | undefined;
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':');
    username = decodeURIComponent(colon < 0 ? userinfo : userinfo.slice(0, colon)) || undefined;
    password = colon < 0 ? undefined : decodeURIComponent(userinfo.slice(colon + 1)) || undefined;
  }
  return { kind: 'sentinel', sentinels, masterName, ...(username ? { username } : {}), ...(password ? { password } : {}) };
}

/** The `REDIS_URL` of a sentinel set. */
export function sentinelUrl(sentinels: ReadonlyArray<{ host: string; port: number }>, masterName: string): string {
  return `${SENTINEL_SCHEME}//${sentinels.map((s) => `${s.host.includes(':') ? `[${s.host}]` : s.host}:${s.port}`).join(',')}/${encodeURIComponent(masterName)}`;
}
