import { Redis } from 'ioredis';
import { createDb, type Db } from '../../core/db';
import { startRedis, type RedisHandle } from '../../infra/provision/redis';
import { RateLimiter, parseRateLimitConfig } from '../../gateway/rate-limit';
import { SigningKeys } from '../../gateway/jwt/signing-keys';
import { issuerRouter } from '../../gateway/jwt/token-endpoint';
import { platformInfo } from '../harness/platform-info';
import { api, createPrivateRepo, createTenantWithAdmin, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, tempDir } from '../helpers/git';
import { cloneUrlVia, seededPrivateRepo, startOwnGateway } from '../helpers/own-gateway';

// Issue 10, defect 7: rate limits that tell clients apart. A gateway of its own with the DEFAULT
// limits (and a Redis of its own, so no other suite's counters interfere), in front of the
// platform's api and git-server, driven by the real git client from one address (127.0.0.1):
// a CI fleet's parallel clones and pushes with their own tokens are never refused, git's
// credential-less probe spends nothing, and repeated bad credentials still end in 429.

const quiet = { info: () => undefined, debug: () => undefined, warn: () => undefined };

// A slow check fails open (a refused request would pass): on a loaded CI machine a Redis answer can
// take longer than the production budget, so these tests of the limits give it ample time; the
// budget itself is tested in rate-limit.test.ts.
const LIMIT_CHECK_BUDGET_MS = 10_000;

let db: Db;
let ownRedis: RedisHandle;
let redis: Redis;
let gw: { base: string; close(): void };
let base: string;
let t: TenantFixture;
let repo: string;

const viaOwn = (owner: string, name: string, token?: string) => cloneUrlVia(base, owner, name, token);

beforeAll(async () => {
  db = createDb(platformInfo().databaseUrl, 4);
  ownRedis = await startRedis({ dataDir: tempDir('dotgit-rl-redis-'), port: 0, log: quiet });
  redis = new Redis(ownRedis.redisUrl);
  gw = await startOwnGateway(db, new RateLimiter({ redis, config: parseRateLimitConfig({}), failMode: 'open', timeoutMs: LIMIT_CHECK_BUDGET_MS }));
  base = gw.base;
  t = await createTenantWithAdmin();
  repo = await seededPrivateRepo(t, 'fleet');
});

afterAll(async () => {
  gw.close();
  redis.disconnect();
  await ownRedis.stop();
  await db.end();
});

async function fleetTokens(n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await api<{ token: string }>('POST', '/api/v1/tokens', { token: t.token, body: { scopes: ['read', 'write'] } });
    if (r.status !== 201) throw new Error(`token: ${r.status} ${r.text}`);
    out.push(r.body.token);
  }
  return out;
}

test('50 parallel pushes and 20 parallel clones from one address, each with its own token, are never refused at the default limits', async () => {
  const tokens = await fleetTokens(50);
  // One repository per job, as a fleet building many projects has: pushes to one repository take
  // its write lock in turn, which is not what this test is about.
  const repos: string[] = [];
  for (let i = 0; i < tokens.length; i++) repos.push(await createPrivateRepo(t, 'job'));
  const src = await localRepo({ 'README.md': 'one job of the fleet\n' });
  const pushes = await Promise.all(
    tokens.map(async (token, i) => {
      const r = await git(['push', viaOwn(t.tenant, repos[i], token), 'main'], src);
      return { i, code: r.code, stderr: r.stderr };
    }),
  );
  expect(pushes.filter((p) => p.code !== 0)).toEqual([]);
  const work = tempDir('dotgit-fleet-');
  const clones = await Promise.all(
    tokens.slice(0, 20).map(async (token, i) => {
      const r = await git(['clone', '-q', viaOwn(t.tenant, repo, token), `c-${i}`], work);
      return { i, code: r.code, stderr: r.stderr };
    }),
  );
  expect(clones.filter((c) => c.code !== 0)).toEqual([]);
}, 400_000);

test('git\'s credential-less probe is answered 401 without spending the address\'s push bucket', async () => {
  // Far more probes than the push bucket holds (10): each is asked for credentials, none is refused.
  const probes = await Promise.all(
    Array.from({ length: 30 }, () => fetch(`${base}/${t.tenant}/${repo}.git/info/refs?service=git-receive-pack`)),
  );
  expect(probes.map((r) => r.status)).toEqual(Array(30).fill(401));
  expect(probes[0].headers.get('www-authenticate')).toMatch(/^Basic /);
  // And a push with a token right after them still goes through.
  const [token] = await fleetTokens(1);
  const work = tempDir('dotgit-probe-');
  const clone = await git(['clone', '-q', viaOwn(t.tenant, repo, token), 'w'], work);
  expect(clone.code).toBe(0);
  const push = await git(['push', viaOwn(t.tenant, repo, token), 'HEAD:refs/heads/after-probes'], `${work}/w`);
  expect(push.code).toBe(0);
});

test('repeated bad credentials from one address end in 429; a known good token from there still works', async () => {
  // Used once first, so this gateway knows it (a lock-out must not take down a fleet's good tokens).
  const good = await fetch(`${base}/api/v1/repos/${t.tenant}/${repo}`, { headers: { authorization: `Bearer ${t.token}` } });
  expect(good.status).toBe(200);
  const statuses: number[] = [];
  let last: Response | undefined;
  for (let i = 0; i < 40; i++) {
    const bad = Buffer.from(`x:dg_not-a-real-token-${i}`).toString('base64');
    last = await fetch(`${base}/${t.tenant}/${repo}.git/info/refs?service=git-upload-pack`, { headers: { authorization: `Basic ${bad}` } });
    statuses.push(last.status);
  }
  expect(statuses[0]).toBe(401);
  expect(statuses).toContain(429);
  expect(statuses.slice(statuses.indexOf(429)).every((s) => s === 429)).toBe(true);
  expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0);
  const body = (await last!.json()) as { error: { code: string; message: string } };
  expect(body.error.code).toBe('rate_limited');
  expect(body.error.message).toMatch(/failed authentication/);
  // A bad JWT-looking bearer counts the same way.
  const jwtish = await fetch(`${base}/api/v1/repos/${t.tenant}/${repo}`, { headers: { authorization: 'Bearer eyJhbGciOiJub25lIn0.e30.' } });
  expect(jwtish.status).toBe(429);
  const again = await fetch(`${base}/api/v1/repos/${t.tenant}/${repo}`, { headers: { authorization: `Bearer ${t.token}` } });
  expect(again.status).toBe(200);
});

test('anonymous requests answered 401 spend nothing from the address\'s limits; anonymous reads that succeed still do', async () => {
  // A gateway with a small fetch window (5 a minute per address), over its own Redis database.
  const small = new Redis(ownRedis.redisUrl, { db: 1 });
  const own = await startOwnGateway(db, new RateLimiter({ redis: small, config: parseRateLimitConfig({ 'git-fetch': { window: { limit: 5, windowMs: 60_000 } } }), failMode: 'open', timeoutMs: LIMIT_CHECK_BUDGET_MS }));
  try {
    // Private: git's credential-less probe, 20 times (a CI fleet cloning): always asked for credentials.
    const probes: number[] = [];
    for (let i = 0; i < 20; i++) probes.push((await fetch(`${own.base}/${t.tenant}/${repo}.git/info/refs?service=git-upload-pack`)).status);
    expect(probes).toEqual(Array(20).fill(401));
    // A clone with a token right after them goes through.
    const work = tempDir('dotgit-anon-');
    expect((await git(['clone', '-q', cloneUrlVia(own.base, t.tenant, repo, t.token), 'c'], work)).code).toBe(0);
    // Public: anonymous clones are served, and counted against the address.
    const pub = (await api<{ name: string }>('POST', '/api/v1/repos', { token: t.token, body: { owner: t.tenant, name: `pub-${Date.now()}`, visibility: 'public' } })).body.name;
    const src = await localRepo({ 'README.md': 'public\n' });
    expect((await git(['push', '-q', cloneUrl(t.tenant, pub, t.token), 'main'], src)).code).toBe(0);
    const reads: number[] = [];
    for (let i = 0; i < 8; i++) reads.push((await fetch(`${own.base}/${t.tenant}/${pub}.git/info/refs?service=git-upload-pack`)).status);
    expect(reads.slice(0, 5)).toEqual(Array(5).fill(200));
    expect(reads.slice(5)).toEqual(Array(3).fill(429));
  } finally {
    own.close();
    small.disconnect();
  }
});

test('/oauth/token: repeated bad client secrets from one address end in 429 in the OAuth shape', async () => {
  const own = new Redis(ownRedis.redisUrl, { db: 2 });
  const limiter = new RateLimiter({ redis: own, config: parseRateLimitConfig({}), failMode: 'open', timeoutMs: LIMIT_CHECK_BUDGET_MS });
  const keys = new SigningKeys(db, platformInfo().internalSecret);
  const gw2 = await startOwnGateway(db, limiter, { issuer: issuerRouter({ db, keys, issuer: 'https://own.example', audience: 'dotgit', ttlSeconds: 600, limiter }) });
  try {
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 30; i++) {
      last = await fetch(`${gw2.base}/oauth/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'client_credentials', client_id: t.username, client_secret: `dg_guess-${i}` }) });
      statuses.push(last.status);
    }
    expect(statuses[0]).toBe(401);
    expect(statuses).toContain(429);
    expect(statuses.slice(statuses.indexOf(429)).every((s) => s === 429)).toBe(true);
    expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0);
    const body = (await last!.json()) as { error: string; error_description: string };
    expect(body.error).toBe('slow_down');
    expect(body.error_description).toMatch(/too many failed authentications/);
  } finally {
    gw2.close();
    own.disconnect();
  }
});
