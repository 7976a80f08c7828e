import { ZodError } from 'zod';
import {
  DEFAULT_CLASS_LIMITS, limitsFor, parseRateLimitConfig, rateLimitKey, routeClass, subjectFor, type RouteClass,
} from '../../gateway/rate-limit/policy';

describe('routeClass', () => {
  const table: [string, string, string | Record<string, unknown> | undefined, RouteClass | undefined][] = [
    ['GET', '/api', undefined, 'api-read'],
    ['GET', '/api/v1/repos', undefined, 'api-read'],
    ['HEAD', '/api/v1/repos/a/b', undefined, 'api-read'],
    ['get', '/api/v1/repos', undefined, 'api-read'],
    ['POST', '/api/v1/repos', undefined, 'api-write'],
    ['PUT', '/api/v1/x', undefined, 'api-write'],
    ['PATCH', '/api/v1/x', undefined, 'api-write'],
    ['DELETE', '/api/v1/x', undefined, 'api-write'],
    ['OPTIONS', '/api/v1/x', undefined, 'api-write'],
    ['GET', '/o/r.git/info/refs', 'service=git-upload-pack', 'git-fetch'],
    ['GET', '/o/r.git/info/refs', { service: 'git-upload-pack' }, 'git-fetch'],
    ['GET', '/o/r.git/info/refs', undefined, 'git-fetch'], // dumb HTTP advertisement
    ['POST', '/o/r.git/git-upload-pack', undefined, 'git-fetch'],
    ['GET', '/o/r.git/info/refs', 'service=git-receive-pack', 'git-push'],
    ['GET', '/o/r.git/info/refs', '?service=git-receive-pack', 'git-push'],
    ['GET', '/o/r.git/info/refs', { service: 'git-receive-pack' }, 'git-push'],
    ['GET', '/o/r.git/info/refs', { service: ['git-upload-pack', 'git-receive-pack'] }, 'git-push'],
    ['POST', '/o/r.git/git-receive-pack', undefined, 'git-push'],
    ['POST', '/o/r.git/info/lfs/objects/batch', undefined, 'git-fetch'],
    ['PUT', '/o/r.git/info/lfs/objects/abc', undefined, 'git-fetch'],
    ['GET', '/healthz', undefined, undefined],
    ['GET', '/apix', undefined, undefined],
    ['GET', '/o/r/info/refs', undefined, undefined],
    ['GET', '/', undefined, undefined],
  ];
  test.each(table)('%s %s ?%j -> %s', (method, path, query, expected) => {
    expect(routeClass(method, path, query)).toBe(expected);
  });

  test('takes URLSearchParams too', () => {
    expect(routeClass('GET', '/o/r.git/info/refs', new URLSearchParams({ service: 'git-receive-pack' }))).toBe('git-push');
  });
});

describe('parseRateLimitConfig', () => {
  test('defaults: 600/120/300/60 a minute, and a 10-at-1/s bucket on pushes only', () => {
    const c = parseRateLimitConfig({});
    expect(c.classes).toEqual({
      'api-read': { window: { limit: 600, windowMs: 60_000 } },
      'api-write': { window: { limit: 120, windowMs: 60_000 } },
      'git-fetch': { window: { limit: 300, windowMs: 60_000 } },
      'git-push': { window: { limit: 60, windowMs: 60_000 }, bucket: { capacity: 10, ratePerSecond: 1 } },
    });
    expect(c.tenants).toEqual({});
    expect(parseRateLimitConfig()).toEqual(c);
  });

  test('class entries merge over the defaults; bucket null removes one; a bucket can be added', () => {
    const c = parseRateLimitConfig({
      'api-read': { window: { limit: 1000, windowMs: 10_000 } },
      'api-write': { bucket: { capacity: 5, ratePerSecond: 0.5 } },
      'git-push': { bucket: null },
    });
    expect(c.classes['api-read']).toEqual({ window: { limit: 1000, windowMs: 10_000 } });
    expect(c.classes['api-write']).toEqual({ window: { limit: 120, windowMs: 60_000 }, bucket: { capacity: 5, ratePerSecond: 0.5 } });
    expect(c.classes['git-push']).toEqual({ window: { limit: 60, windowMs: 60_000 } });
    expect(c.classes['git-fetch']).toEqual(DEFAULT_CLASS_LIMITS['git-fetch']);
  });

  test('tenant overrides merge over the resolved platform class and are picked for that tenant only', () => {
    const c = parseRateLimitConfig({
      'git-push': { window: { limit: 30, windowMs: 60_000 } },
      tenants: { acme: { 'git-push': { bucket: { capacity: 50, ratePerSecond: 5 } }, 'api-read': { window: { limit: 5000, windowMs: 60_000 } } } },
    });
    expect(limitsFor(c, 'git-push', 'acme')).toEqual({ window: { limit: 30, windowMs: 60_000 }, bucket: { capacity: 50, ratePerSecond: 5 } });
    expect(limitsFor(c, 'api-read', 'acme')).toEqual({ window: { limit: 5000, windowMs: 60_000 } });
    expect(limitsFor(c, 'api-write', 'acme')).toEqual(c.classes['api-write']); // not overridden
    expect(limitsFor(c, 'git-push', 'other')).toEqual({ window: { limit: 30, windowMs: 60_000 }, bucket: { capacity: 10, ratePerSecond: 1 } });
    expect(limitsFor(c, 'git-push')).toEqual(c.classes['git-push']);
    expect(limitsFor(c, 'git-push', 'toString')).toEqual(c.classes['git-push']); // no prototype lookups
  });

  test.each([
    [{ 'api-read': { window: { limit: 0, windowMs: 1000 } } }, 'api-read.window.limit'],
    [{ 'api-read': { window: { limit: 1.5, windowMs: 1000 } } }, 'api-read.window.limit'],
    [{ 'api-read': { window: { limit: 10 } } }, 'api-read.window.windowMs'],
    [{ 'git-push': { bucket: { capacity: 10, ratePerSecond: 0 } } }, 'git-push.bucket.ratePerSecond'],
    [{ 'api-raed': {} }, ''], // unknown class: a typo must not silently mean "defaults"
    [{ tenants: { acme: { 'git-pull': {} } } }, 'tenants.acme'],
    [{ 'api-read': { window: { limit: 10, windowMs: 1000, burst: 3 } } }, 'api-read.window'],
  ])('rejects %j (at %s)', (input, at) => {
    let err: unknown;
    try {
      parseRateLimitConfig(input);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ZodError);
    expect((err as ZodError).issues.map((i) => i.path.join('.'))).toContain(at);
  });
});

test('subjects and keys', () => {
  expect(subjectFor({ tokenId: 42 }, '10.0.0.1')).toBe('token:42');
  expect(subjectFor(null, '10.0.0.1')).toBe('ip:10.0.0.1');
  expect(subjectFor(undefined, '::ffff:10.0.0.1')).toBe('ip:10.0.0.1');
  expect(subjectFor(undefined, '2001:db8::1')).toBe('ip:2001:db8::1');
  expect(subjectFor(undefined, undefined)).toBe('ip:unknown');
  expect(rateLimitKey('window', 'api-read', 'token:42')).toBe('dotgit:rl:window:api-read:token:42');
  expect(rateLimitKey('bucket', 'git-push', 'ip:10.0.0.1')).toBe('dotgit:rl:bucket:git-push:ip:10.0.0.1');
});
