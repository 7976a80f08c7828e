import { randomUUID } from 'node:crypto';
import net from 'node:net';
import { Redis } from 'ioredis';
import client from 'prom-client';
import { leakyBucket } from '../../gateway/rate-limit/leaky-bucket';
import { parseRateLimitConfig, type RateLimitConfigInput } from '../../gateway/rate-limit/policy';
import { RateLimiter } from '../../gateway/rate-limit/rate-limiter';
import { slidingWindow } from '../../gateway/rate-limit/sliding-window';
import { windowAndBucket } from '../../gateway/rate-limit/window-and-bucket';
import { platformInfo } from '../harness/platform-info';
import { createRedis } from '../../core/redis';
import { revokedTokenKey } from '../../core/token-revocation';

// The rate-limit scripts on the platform's real Redis. Algorithm tests pass explicit times so the
// boundaries are exact; the RateLimiter tests use Redis's own clock, as production does.

let redis: Redis;
let redis2: Redis;
beforeAll(() => {
  redis = new Redis(platformInfo().redisUrl);
  redis2 = new Redis(platformInfo().redisUrl); // a second connection: as a second gateway instance
});
afterAll(() => {
  redis.disconnect();
  redis2.disconnect();
});

const key = (what: string) => `dotgit:rl:test:${what}:${randomUUID()}`;
const subject = () => `token:test-${randomUUID()}`;

describe('sliding window (limit 3 per 1000 ms, explicit times)', () => {
  const lim = { limit: 3, windowMs: 1000 };

  test('exact at the boundary: an entry made at t leaves at exactly t + 1000', async () => {
    const k = key('sw');
    const at = (t: number) => slidingWindow(redis, k, lim, t);
    expect(await at(0)).toEqual({ allowed: true, remaining: 2, resetMs: 1000, retryAfterMs: 0 });
    expect(await at(1)).toEqual({ allowed: true, remaining: 1, resetMs: 999, retryAfterMs: 0 });
    expect(await at(2)).toEqual({ allowed: true, remaining: 0, resetMs: 998, retryAfterMs: 0 });
    expect(await at(3)).toEqual({ allowed: false, remaining: 0, resetMs: 997, retryAfterMs: 997 });
    expect(await at(999)).toEqual({ allowed: false, remaining: 0, resetMs: 1, retryAfterMs: 1 });
    expect(await at(999)).toMatchObject({ allowed: false }); // refusals are not recorded: still 1 ms to go
    expect(await at(1000)).toEqual({ allowed: true, remaining: 0, resetMs: 1, retryAfterMs: 0 }); // t=0 left
    expect(await at(1000)).toEqual({ allowed: false, remaining: 0, resetMs: 1, retryAfterMs: 1 }); // t=1 leaves at 1001
    expect(await at(1001)).toMatchObject({ allowed: true, remaining: 0 });
    expect(await at(1002)).toMatchObject({ allowed: true, remaining: 0 }); // t=2 left
    expect(await at(1002)).toEqual({ allowed: false, remaining: 0, resetMs: 998, retryAfterMs: 998 }); // t=1000 leaves at 2000
    expect(await at(5000)).toEqual({ allowed: true, remaining: 2, resetMs: 1000, retryAfterMs: 0 }); // all gone
    expect(await redis.zcard(k)).toBe(1);
  });

  test('no double burst across a window edge (what a fixed window would allow)', async () => {
    const k = key('sw');
    for (let i = 0; i < 3; i++) expect((await slidingWindow(redis, k, lim, 999)).allowed).toBe(true);
    for (let i = 0; i < 3; i++) expect((await slidingWindow(redis, k, lim, 1000)).allowed).toBe(false);
    expect((await slidingWindow(redis, k, lim, 1998)).allowed).toBe(false);
    expect((await slidingWindow(redis, k, lim, 1999)).remaining).toBe(2);
  });

  test('many requests at the same instant, from two connections at once: exactly the limit gets through', async () => {
    const k = key('sw');
    const all = await Promise.all(Array.from({ length: 20 }, (_, i) => slidingWindow(i % 2 ? redis : redis2, k, { limit: 7, windowMs: 60_000 }, 5000)));
    expect(all.filter((r) => r.allowed)).toHaveLength(7);
    expect(all.filter((r) => !r.allowed).every((r) => r.retryAfterMs === 60_000)).toBe(true);
  });

  test('a lowered limit waits for enough entries to leave', async () => {
    const k = key('sw');
    for (const t of [0, 100, 200, 300]) await slidingWindow(redis, k, { limit: 4, windowMs: 1000 }, t);
    // limit 2 now: three of the four must leave before a fifth fits; the third (t=200) leaves at 1200
    expect(await slidingWindow(redis, k, { limit: 2, windowMs: 1000 }, 500)).toEqual({ allowed: false, remaining: 0, resetMs: 500, retryAfterMs: 700 });
  });

  test("without an explicit time, Redis's clock is used", async () => {
    const k = key('sw');
    const l = { limit: 2, windowMs: 60_000 };
    expect(await slidingWindow(redis, k, l)).toMatchObject({ allowed: true, remaining: 1 });
    expect(await slidingWindow(redis2, k, l)).toMatchObject({ allowed: true, remaining: 0 });
    const refused = await slidingWindow(redis, k, l);
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterMs).toBeGreaterThan(55_000);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(60_000);
    const [sec] = await redis.time();
    const score = Number(await redis.zscore(k, (await redis.zrange(k, '0', '0'))[0]));
    expect(Math.abs(score - Number(sec) * 1000)).toBeLessThan(5000);
    expect(await redis.pttl(k)).toBeGreaterThan(55_000); // expires once everything has left
  });
});

test('scripts survive the server losing its script cache (a Redis restart): EVALSHA falls back to EVAL', async () => {
  const k = key('sw');
  await slidingWindow(redis, k, { limit: 5, windowMs: 1000 }, 0);
  await redis.script('FLUSH');
  expect((await slidingWindow(redis, k, { limit: 5, windowMs: 1000 }, 1)).remaining).toBe(3); // NOSCRIPT, then EVAL
  expect((await leakyBucket(redis, key('lb'), { capacity: 1, ratePerSecond: 1 }, 0)).allowed).toBe(true);
});

describe('leaky bucket (explicit times)', () => {
  test('capacity 2 at 1/s: two at once, the third waits exactly 1000 ms', async () => {
    const k = key('lb');
    const b = { capacity: 2, ratePerSecond: 1 };
    const at = (t: number) => leakyBucket(redis, k, b, t);
    expect(await at(0)).toEqual({ allowed: true, remaining: 1, resetMs: 1000, retryAfterMs: 0 });
    expect(await at(0)).toEqual({ allowed: true, remaining: 0, resetMs: 2000, retryAfterMs: 0 });
    expect(await at(0)).toEqual({ allowed: false, remaining: 0, resetMs: 2000, retryAfterMs: 1000 });
    expect(await at(999)).toEqual({ allowed: false, remaining: 0, resetMs: 1001, retryAfterMs: 1 });
    expect(await at(1000)).toEqual({ allowed: true, remaining: 0, resetMs: 2000, retryAfterMs: 0 });
    expect(await at(1500)).toEqual({ allowed: false, remaining: 0, resetMs: 1500, retryAfterMs: 500 });
    expect(await at(2500)).toEqual({ allowed: true, remaining: 0, resetMs: 1500, retryAfterMs: 0 }); // 2 - 1.5 drained + 1 = 1.5
    expect(await at(10_000)).toEqual({ allowed: true, remaining: 1, resetMs: 1000, retryAfterMs: 0 }); // empty, then 1
    expect(await redis.hgetall(k)).toEqual({ level: '1000000', ts: '10000' });
  });

  test('a steady 1/s stream passes forever; faster is smoothed to the rate', async () => {
    const k = key('lb');
    const b = { capacity: 3, ratePerSecond: 1 };
    for (let t = 0; t <= 20_000; t += 1000) expect((await leakyBucket(redis, k, b, t)).allowed).toBe(true);
    // every 500 ms for 10 s (20 requests): what drained in those 10 s (10) plus the room there was
    // (level 1 of 3) gets through, then every other request: the rate, not the request rate
    let admitted = 0;
    for (let t = 20_500; t <= 30_000; t += 500) if ((await leakyBucket(redis, k, b, t)).allowed) admitted++;
    expect(admitted).toBe(10 + (3 - 1));
  });

  test('fractional rates (0.5/s)', async () => {
    const k = key('lb');
    const b = { capacity: 1, ratePerSecond: 0.5 };
    expect((await leakyBucket(redis, k, b, 0)).allowed).toBe(true);
    expect(await leakyBucket(redis, k, b, 1)).toMatchObject({ allowed: false, retryAfterMs: 1999 });
    expect((await leakyBucket(redis, k, b, 1999)).allowed).toBe(false);
    expect((await leakyBucket(redis, k, b, 2000)).allowed).toBe(true);
  });
});

describe('window and bucket together', () => {
  test('a refusal by either consumes neither', async () => {
    const keys = { window: key('w'), bucket: key('b') };
    const limits = { window: { limit: 4, windowMs: 60_000 }, bucket: { capacity: 2, ratePerSecond: 1 } };
    const at = (t: number) => windowAndBucket(redis, keys, limits, t);
    expect((await at(0)).allowed).toBe(true);
    expect((await at(0)).allowed).toBe(true);
    for (let i = 0; i < 5; i++) {
      const r = await at(0);
      expect(r).toMatchObject({ allowed: false, window: { allowed: true, remaining: 2 }, bucket: { allowed: false, retryAfterMs: 1000 } });
    }
    expect(await redis.zcard(keys.window)).toBe(2); // the bucket's refusals took no window quota
    expect((await at(1000)).allowed).toBe(true);
    expect((await at(2000)).allowed).toBe(true); // window now full (4)
    const level = await redis.hget(keys.bucket, 'level');
    const r = await at(10_000); // bucket empty by now, window still full
    expect(r).toMatchObject({ allowed: false, window: { allowed: false, retryAfterMs: 50_000 }, bucket: { allowed: true, remaining: 2 } });
    expect(await redis.hget(keys.bucket, 'level')).toBe(level); // the window's refusal took no bucket room
    expect(await redis.hget(keys.bucket, 'ts')).toBe('2000');
  });
});

describe('RateLimiter', () => {
  // A generous Redis budget: these tests are about the decisions, and a check that takes longer than
  // the default 100 ms on a loaded machine would fail closed (CI: a push refused at its 7th of 10).
  // The timeout's own behaviour is tested below with short budgets.
  const limiter = (input: RateLimitConfigInput, conn: Redis = redis, failMode: 'open' | 'closed' = 'closed') =>
    new RateLimiter({ redis: conn, config: parseRateLimitConfig(input), failMode, timeoutMs: 10_000 });
  // Exact headers (t=60) and a burst that drains at 1/s hold only while the checks fit in a second of
  // Redis time: a sequence that failed after taking most of a second (a loaded machine) runs again on
  // a fresh subject. A broken limiter fails fast, every time.
  async function withinASecond<T>(body: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const started = Date.now();
      try {
        return await body();
      } catch (err) {
        if (attempt === 3 || Date.now() - started < 800) throw err;
      }
    }
  }

  test('two instances on two connections share one limit; headers are exact', async () => {
    await withinASecond(async () => {
      const config = { 'api-write': { window: { limit: 3, windowMs: 60_000 } } };
      const a = limiter(config, redis);
      const b = limiter(config, redis2);
      const s = subject();
      const req = { method: 'POST', path: '/api/v1/repos', query: {}, subject: s };
      const first = await a.check(req);
      expect(first).toEqual({ allowed: true, headers: { 'RateLimit-Policy': '"api-write";q=3;w=60', RateLimit: '"api-write";r=2;t=60' } });
      expect((await b.check(req)).headers.RateLimit).toBe('"api-write";r=1;t=60');
      expect((await a.check(req)).headers.RateLimit).toBe('"api-write";r=0;t=60');
      const refused = await b.check(req);
      expect(refused).toEqual({
        allowed: false,
        status: 429,
        headers: { 'RateLimit-Policy': '"api-write";q=3;w=60', RateLimit: '"api-write";r=0;t=60', 'Retry-After': '60' },
        message: 'rate limit exceeded for api-write: 3 requests per 60 s; retry in 60 s',
      });
      // Other classes and other subjects have their own budgets.
      expect((await b.check({ ...req, method: 'GET' })).allowed).toBe(true);
      expect((await b.check({ ...req, subject: subject() })).allowed).toBe(true);
    });
  });

  test("on the gateway's auto-pipelined client, checks made in one turn each get their own answer, also after SCRIPT FLUSH (NOSCRIPT) and for a revoked token", async () => {
    const conn = createRedis(platformInfo().redisUrl, { autoPipelining: true });
    try {
      const l = limiter({ 'api-write': { window: { limit: 5, windowMs: 60_000 } } }, conn);
      const req = { method: 'POST', path: '/api/v1/repos', query: {}, subject: subject() };
      await conn.script('FLUSH'); // every check's evalsha now fails with NOSCRIPT and falls back
      const answers = await Promise.all(Array.from({ length: 8 }, () => l.check(req)));
      expect(answers.filter((a) => a.allowed).map((a) => a.headers.RateLimit).sort()).toEqual([0, 1, 2, 3, 4].map((r) => `"api-write";r=${r};t=60`));
      expect(answers.filter((a) => !a.allowed).map((a) => a.status)).toEqual([429, 429, 429]);
      const tokenId = 900_000_000 + Math.floor(Math.random() * 1_000_000);
      await conn.set(revokedTokenKey(tokenId), '1', 'EX', 60);
      const mixed = await Promise.all([
        l.check({ ...req, method: 'GET', subject: subject(), revocationKey: revokedTokenKey(tokenId) }),
        l.check({ ...req, method: 'GET', subject: subject(), revocationKey: revokedTokenKey(tokenId + 1) }),
      ]);
      expect(mixed.map((m) => Boolean(m.revoked))).toEqual([true, false]);
      expect(mixed[1]!.allowed).toBe(true);
      expect(conn.options.enableAutoPipelining).toBe(true);
    } finally {
      conn.disconnect();
    }
  });

  test('pushes: window and burst policies in the headers; the 11th push in a burst waits about a second', async () => {
    const { l, push } = await withinASecond(async () => {
      const l = limiter({});
      const s = subject();
      const push = { method: 'POST', path: '/o/r.git/git-receive-pack', query: {}, subject: s };
      const allowed = async () => (await client.register.getSingleMetric('dotgit_rate_limit_allowed_total')!.get()).values.find((v) => v.labels.class === 'git-push')?.value ?? 0;
      const allowedBefore = await allowed();
      const first = await l.check(push);
      expect(first.headers).toEqual({
        'RateLimit-Policy': '"git-push";q=60;w=60, "git-push-burst";q=10;w=10',
        RateLimit: '"git-push";r=59;t=60, "git-push-burst";r=9;t=1',
      });
      // The advertisement of a push counts as a push too.
      for (let i = 0; i < 9; i++) expect((await l.check({ ...push, method: 'GET', path: '/o/r.git/info/refs', query: { service: 'git-receive-pack' } })).allowed).toBe(true);
      const refusals = async () => (await client.register.getSingleMetric('dotgit_rate_limit_refusals_total')!.get()).values.find((v) => v.labels.class === 'git-push')?.value ?? 0;
      const before = await refusals();
      const refused = await l.check(push);
      expect(refused).toMatchObject({ allowed: false, status: 429, headers: { 'Retry-After': '1' } });
      expect(refused.headers.RateLimit).toMatch(/^"git-push";r=50;t=60, "git-push-burst";r=0;t=10$/);
      expect(refused.message).toBe('rate limit exceeded for git-push: bursts of 10 requests draining at 1 per second ("git-push-burst"); retry in 1 s');
      expect(await refusals()).toBe(before + 1);
      // Both halves of the decisions are counted (issue 14 item 2): the ten let through.
      expect(await allowed()).toBe(allowedBefore + 10);
      return { l, push };
    });
    await new Promise((r) => setTimeout(r, 1100));
    expect((await l.check(push)).allowed).toBe(true);
  });

  test("a tenant's override is picked for that tenant only", async () => {
    const l = limiter({ tenants: { acme: { 'api-read': { window: { limit: 1, windowMs: 60_000 } } } } });
    const acme = { method: 'GET', path: '/api/v1/repos', query: {}, subject: subject(), tenant: 'acme' };
    expect((await l.check(acme)).headers['RateLimit-Policy']).toBe('"api-read";q=1;w=60');
    expect(await l.check(acme)).toMatchObject({ allowed: false, status: 429 });
    const other = { ...acme, subject: subject(), tenant: 'other' };
    expect((await l.check(other)).headers['RateLimit-Policy']).toBe('"api-read";q=600;w=60');
    expect((await l.check(other)).allowed).toBe(true);
  });

  test('paths outside any route class are not limited and do not touch Redis', async () => {
    const l = new RateLimiter({ redis: deadRedis(await closedPort()), config: parseRateLimitConfig({}), failMode: 'closed' });
    expect(await l.check({ method: 'GET', path: '/healthz', subject: subject() })).toEqual({ allowed: true, headers: {} });
  });
});

describe('when Redis is unreachable', () => {
  const failures = async (reason: string, mode: string) =>
    (await client.register.getSingleMetric('dotgit_rate_limit_redis_failures_total')!.get()).values
      .find((v) => v.labels.reason === reason && v.labels.mode === mode)?.value ?? 0;
  const req = { method: 'GET', path: '/api/v1/repos', subject: 'ip:10.0.0.1' };
  const conns: Redis[] = [];
  afterAll(() => conns.forEach((c) => c.disconnect()));

  test.each(['open', 'closed'] as const)('a closed port fails %s at once, counted', async (failMode) => {
    const conn = deadRedis(await closedPort());
    conns.push(conn);
    const seen: unknown[] = [];
    const l = new RateLimiter({ redis: conn, config: parseRateLimitConfig({}), failMode, timeoutMs: 100, onRedisFailure: (e) => seen.push(e) });
    const before = await failures('error', failMode);
    // No timing bound (those live in benchmarks): the counted kind is `error`, not `timeout`.
    const value = await l.check(req);
    expect(value).toEqual(failMode === 'open'
      ? { allowed: true, headers: {}, unchecked: true }
      : { allowed: false, status: 503, headers: { 'Retry-After': '1' }, message: 'rate limiting is unavailable (Redis did not answer); retry shortly', unchecked: true });
    expect(await failures('error', failMode)).toBe(before + 1);
    expect(seen).toHaveLength(1);
  });

  test.each(['open', 'closed'] as const)('a Redis that accepts but never answers fails %s after the timeout, counted', async (failMode) => {
    const sockets: net.Socket[] = [];
    const blackHole = net.createServer((s) => sockets.push(s)); // reads nothing, answers nothing
    await new Promise<void>((r) => blackHole.listen(0, '127.0.0.1', r));
    const conn = new Redis({ port: (blackHole.address() as net.AddressInfo).port, host: '127.0.0.1', maxRetriesPerRequest: 0, retryStrategy: () => null });
    conn.on('error', () => undefined);
    conns.push(conn);
    try {
      const l = new RateLimiter({ redis: conn, config: parseRateLimitConfig({}), failMode, timeoutMs: 150 });
      const before = await failures('timeout', failMode);
      // No timing bound (those live in benchmarks): the counted kind is `timeout`.
      const value = await l.check(req);
      expect(value.allowed).toBe(failMode === 'open');
      if (failMode === 'closed') expect(value.status).toBe(503);
      expect(await failures('timeout', failMode)).toBe(before + 1);
    } finally {
      conn.disconnect();
      sockets.forEach((s) => s.destroy());
      blackHole.close();
    }
  });
});

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

/** A client of a Redis that is down: commands fail instead of queueing for a reconnect. */
function deadRedis(port: number): Redis {
  const conn = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
  conn.on('error', () => undefined);
  return conn;
}
