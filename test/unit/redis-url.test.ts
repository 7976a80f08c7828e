import { loadConfig } from '../../core/config';
import { parseRedisUrl, RedisUrlError, sentinelUrl } from '../../core/redis-url';

// REDIS_URL's sentinel form (ADR 0016): several hosts, a master name, default port 26379.

test('a redis-sentinel:// URL names the sentinels and the master', () => {
  expect(parseRedisUrl('redis-sentinel://10.0.0.1:26380,sentinel-b,[::1]:5000/dotgit')).toEqual({
    kind: 'sentinel',
    sentinels: [
      { host: '10.0.0.1', port: 26380 },
      { host: 'sentinel-b', port: 26379 },
      { host: '::1', port: 5000 },
    ],
    masterName: 'dotgit',
  });
  expect(parseRedisUrl('redis-sentinel://app:s%40cret@h:1/my-master')).toEqual({
    kind: 'sentinel',
    sentinels: [{ host: 'h', port: 1 }],
    masterName: 'my-master',
    username: 'app',
    password: 's@cret',
  });
  expect(parseRedisUrl('redis-sentinel://:pw@h/m')).toMatchObject({ password: 'pw' });
  expect(parseRedisUrl('redis-sentinel://:pw@h/m')).not.toHaveProperty('username');
});

test('other URLs are one server, handed to ioredis as they are', () => {
  expect(parseRedisUrl('redis://127.0.0.1:16379')).toEqual({ kind: 'server', url: 'redis://127.0.0.1:16379' });
  expect(parseRedisUrl('rediss://u:p@h:6380/2')).toEqual({ kind: 'server', url: 'rediss://u:p@h:6380/2' });
});

test.each([
  ['redis-sentinel://h:1', /master name is missing/],
  ['redis-sentinel://h:1/', /master name is missing/],
  ['redis-sentinel://h:1/a/b', /master name/],
  ['redis-sentinel://h:1,/m', /sentinel address "" is not host\[:port\]/],
  ['redis-sentinel://h:99999/m', /"h:99999" is not host\[:port\]/],
  ['redis-sentinel://h:x/m', /"h:x"/],
])('%s is refused', (url, message) => {
  expect(() => parseRedisUrl(url)).toThrow(RedisUrlError);
  expect(() => parseRedisUrl(url)).toThrow(message);
});

test('configuration refuses a malformed sentinel REDIS_URL at start-up', () => {
  expect(() => loadConfig({ REDIS_URL: 'redis-sentinel://a:1,b:2' })).toThrow(/REDIS_URL.*master name is missing/);
  expect(loadConfig({ REDIS_URL: 'redis-sentinel://a:1,b:2/dotgit' }).redisUrl).toBe('redis-sentinel://a:1,b:2/dotgit');
});

test('sentinelUrl writes what parseRedisUrl reads', () => {
  const sentinels = [{ host: '127.0.0.1', port: 16479 }, { host: '::1', port: 16480 }];
  expect(sentinelUrl(sentinels, 'dotgit')).toBe('redis-sentinel://127.0.0.1:16479,[::1]:16480/dotgit');
  expect(parseRedisUrl(sentinelUrl(sentinels, 'dotgit'))).toEqual({ kind: 'sentinel', sentinels, masterName: 'dotgit' });
});
