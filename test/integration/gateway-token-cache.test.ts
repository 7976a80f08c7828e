import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import pino from 'pino';
import { createDb, type Db } from '../../core/db';
import { createGatewayApp } from '../../gateway/app';
import { RateLimiter } from '../../gateway/rate-limit';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, type TenantFixture } from '../helpers/api-client';
import { ownLimits } from '../helpers/own-gateway';

// API tokens cached in the gateway's memory: no Postgres query for a known token, yet a revoked
// token is refused at once by every instance (the tombstone the api writes to Redis is checked in
// the rate-limit round trip), expiry is honoured from memory, and with Redis down Postgres decides.

let db: Db;
let redis: Redis;
let t: TenantFixture;
const servers: http.Server[] = [];

async function serve(handler: http.RequestListener): Promise<string> {
  const s = http.createServer(handler);
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

/** The platform's pool, counting the queries the gateway makes through it. */
function countingDb(): { db: Db; queries: () => number } {
  let n = 0;
  const proxy = new Proxy(db, {
    get(target, key, receiver) {
      if (key === 'query') {
        return (...args: unknown[]) => {
          n++;
          return (target.query as (...a: unknown[]) => unknown).apply(target, args);
        };
      }
      return Reflect.get(target, key, receiver) as unknown;
    },
  });
  return { db: proxy, queries: () => n };
}

async function gatewayOver(limiterRedis: Redis, failMode: 'open' | 'closed' = 'open') {
  const upstream = new URL(await serve((_req, res) => res.writeHead(200).end('ok')));
  const counted = countingDb();
  // A slow Redis answer would count as none (the cache hit confirmed in Postgres): ample time on a loaded machine.
  const limiter = new RateLimiter({ redis: limiterRedis, config: ownLimits(), failMode, timeoutMs: 5_000 });
  const base = await serve(createGatewayApp({ db: counted.db, log: pino({ level: 'silent' }), internalSecret: platformInfo().internalSecret, upstreams: { api: upstream, git: upstream }, limiter, healthChecks: {} }));
  const get = (token: string) => fetch(`${base}/api/v1/anything`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.status);
  return { get, queries: counted.queries };
}

async function newToken(body: Record<string, unknown> = {}) {
  const made = await api<{ id: number; token: string }>('POST', '/api/v1/tokens', { token: t.token, body: { scopes: ['read'], ...body } });
  expect(made.status).toBe(201);
  return made.body;
}

beforeAll(async () => {
  db = createDb(platformInfo().databaseUrl, 2);
  redis = new Redis(platformInfo().redisUrl);
  t = await createTenantWithAdmin();
});
afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
  redis.disconnect();
  await db.end();
});

test('a known token is looked up once; a revoked one is refused by every instance, also a second later', async () => {
  const a = await gatewayOver(redis.duplicate());
  const b = await gatewayOver(redis.duplicate());
  const { id, token } = await newToken();
  for (const gw of [a, b]) {
    expect(await gw.get(token)).toBe(200);
    const after = gw.queries();
    expect(await gw.get(token)).toBe(200);
    expect(await gw.get(token)).toBe(200);
    expect(gw.queries()).toBe(after); // answered from the cache: no Postgres query
  }
  expect((await api('DELETE', `/api/v1/tokens/${id}`, { token: t.token })).status).toBe(204);
  expect(await a.get(token)).toBe(401);
  await new Promise((r) => setTimeout(r, 1000));
  expect(await a.get(token)).toBe(401);
  expect(await b.get(token)).toBe(401);
  // An unknown token is never served from the cache.
  expect(await a.get('dg_not-a-real-token')).toBe(401);
});

test('expiry is honoured from the cache', async () => {
  const gw = await gatewayOver(redis.duplicate());
  // Long enough that the token's first uses fall before it on a loaded machine.
  const expiresAt = Date.now() + 8_000;
  const { token } = await newToken({ expiresAt: new Date(expiresAt).toISOString() });
  expect(await gw.get(token)).toBe(200);
  const after = gw.queries();
  expect(await gw.get(token)).toBe(200);
  expect(gw.queries()).toBe(after);
  await new Promise((r) => setTimeout(r, expiresAt + 500 - Date.now()));
  expect(await gw.get(token)).toBe(401);
});

test('without an answer from Redis (failing open) a cached token is checked in Postgres again', async () => {
  const dead = new Redis({ port: 1, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
  dead.on('error', () => undefined);
  const gw = await gatewayOver(dead, 'open');
  const { id, token } = await newToken();
  expect(await gw.get(token)).toBe(200);
  const after = gw.queries();
  expect(await gw.get(token)).toBe(200);
  expect(gw.queries()).toBe(after + 1); // the cache hit was confirmed in Postgres
  // The tombstone goes to the platform's Redis, which this instance cannot reach: Postgres refuses.
  expect((await api('DELETE', `/api/v1/tokens/${id}`, { token: t.token })).status).toBe(204);
  expect(await gw.get(token)).toBe(401);
  dead.disconnect();
});

test('revocation leaves a tombstone in Redis that outlives any cached entry', async () => {
  const { id } = await newToken();
  expect((await api('DELETE', `/api/v1/tokens/${id}`, { token: t.token })).status).toBe(204);
  const ttl = await redis.ttl(`dotgit:revoked-token:${id}`);
  expect(ttl).toBeGreaterThan(3600);
});
