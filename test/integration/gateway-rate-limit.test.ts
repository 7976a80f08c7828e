import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import pino from 'pino';
import { createDb, type Db } from '../../core/db';
import { createGatewayApp } from '../../gateway/app';
import { RateLimiter, parseRateLimitConfig } from '../../gateway/rate-limit';
import { platformInfo } from '../harness/platform-info';
import { createTenantWithAdmin, uniqueName, type TenantFixture } from '../helpers/api-client';
import { ownLimits } from '../helpers/own-gateway';

// Rate limits wired into the gateway: two gateway instances over one Redis share one limit, the
// answers carry the RateLimit fields, and a refusal is 429 with Retry-After.

let db: Db;
let redis: Redis;
let t: TenantFixture;
const servers: http.Server[] = [];
const clients: Redis[] = [];

function track(c: Redis): Redis {
  clients.push(c);
  return c;
}

async function serve(handler: http.RequestListener): Promise<string> {
  const s = http.createServer(handler);
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
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
  for (const c of clients) c.disconnect();
  redis.disconnect();
  await db.end();
});

test('two gateway instances share one sliding window through Redis', async () => {
  const upstream = new URL(await serve((_req, res) => res.writeHead(200).end('ok')));
  // A fresh tenant-specific limit so earlier runs' counters cannot interfere.
  const config = ownLimits({ tenants: { [t.tenant]: { 'api-read': { window: { limit: 5, windowMs: 60_000 } } } } });
  const gateways = await Promise.all(
    [1, 2].map(() =>
      serve(createGatewayApp({ db, log: pino({ level: 'silent' }), internalSecret: platformInfo().internalSecret, upstreams: { api: upstream, git: upstream }, limiter: new RateLimiter({ redis: track(redis.duplicate()), config, failMode: 'open', timeoutMs: 10_000 /* a slow check would fail open */ }), healthChecks: {} })),
    ),
  );
  const answers = [];
  for (let i = 0; i < 8; i++) answers.push(await fetch(`${gateways[i % 2]}/api/v1/${uniqueName('x')}`, { headers: { authorization: `Bearer ${t.token}` } }));
  expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
  expect(answers[0].headers.get('ratelimit-policy')).toBe('"api-read";q=5;w=60');
  expect(answers[0].headers.get('ratelimit')).toMatch(/^"api-read";r=4;t=\d+$/);
  const refused = answers[5];
  expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
  const body = await refused.json();
  expect(body.error.code).toBe('rate_limited');
  expect(body.error.message).toMatch(/api-read/);
  // Anonymous callers are limited per address, separately from the token.
  const anon = await fetch(`${gateways[0]}/api/v1/x`);
  expect(anon.status).toBe(200);
});

test('when Redis cannot answer, fail-closed refuses with 503 and fail-open lets requests through', async () => {
  const upstream = new URL(await serve((_req, res) => res.writeHead(200).end('ok')));
  const dead = new Redis({ port: 1, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
  dead.on('error', () => undefined);
  const make = (failMode: 'open' | 'closed') =>
    serve(createGatewayApp({ db, log: pino({ level: 'silent' }), internalSecret: platformInfo().internalSecret, upstreams: { api: upstream, git: upstream }, limiter: new RateLimiter({ redis: dead, config: parseRateLimitConfig({}), failMode }), healthChecks: {} }));
  const [open, closed] = await Promise.all([make('open'), make('closed')]);
  expect((await fetch(`${open}/api/v1/x`)).status).toBe(200);
  const refused = await fetch(`${closed}/api/v1/x`);
  expect(refused.status).toBe(503);
  expect(refused.headers.get('retry-after')).toBe('1');
  dead.disconnect();
});
