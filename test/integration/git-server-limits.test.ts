import http from 'node:http';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { createDb, type Db } from '../../core/db';
import { signIdentity } from '../../core/internal-identity';
import type { Principal } from '../../core/principal';
import { createGitServerApp } from '../../git-server/app';
import { PackCache } from '../../git-server/pack-cache';
import { RepoGenerations } from '../../git-server/repo-generation';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, uniqueName } from '../helpers/api-client';
import { cloneUrl, git, localRepo } from '../helpers/git';

// The git-server's resource limits, on a second git-server instance with tiny limits over the
// platform's real Postgres and repositories: push size, and per-repository fetch concurrency.

let db: Db;
let server: http.Server;
let base: string;
let principal: Principal;
let owner: string;
let repo: string;

beforeAll(async () => {
  const info = platformInfo();
  db = createDb(info.databaseUrl, 2);
  const fixture = await createTenantWithAdmin();
  owner = fixture.tenant;
  repo = uniqueName('lim');
  await api('POST', '/api/v1/repos', { token: fixture.token, body: { owner, name: repo } });
  const u = (await db.query(`SELECT u.id, u.tenant_id FROM users u WHERE u.username = $1`, [fixture.username])).rows[0];
  principal = { userId: Number(u.id), username: fixture.username, tenantId: Number(u.tenant_id), tenantName: owner, role: 'admin', platformAdmin: false, scopes: ['read', 'write', 'admin'], tokenId: 0 };
  const app = createGitServerApp({
    db,
    log: pino({ level: 'silent' }),
    reposDir: path.join(info.dataDir, 'repos'),
    internalSecret: info.internalSecret,
    publicUrl: info.gatewayUrl,
    onPushRecorded: () => undefined,
    limits: { maxPushBytes: 64 * 1024, uploadPackConcurrency: 1, uploadPackQueue: 0 },
    packCache: new PackCache({ dir: path.join(info.dataDir, 'cache', 'limits-test'), enabled: false, ttlMs: 1000, maxDiskBytes: 1e6, memoryEntryBytes: 0, memoryMaxBytes: 0 }),
    generations: new RepoGenerations(undefined),
    healthChecks: {},
  });
  server = app.listen(0, '127.0.0.1');
  await new Promise((r) => server.once('listening', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/${owner}/${repo}.git`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
  await db?.end();
});

const identity = () => signIdentity(platformInfo().internalSecret, principal, 'limits-test');

test('a push over the size limit is refused and writes nothing', async () => {
  const small = await localRepo({ 'a.txt': 'small\n' });
  const header = ['-c', `http.extraHeader=x-dotgit-identity: ${await identity()}`];
  expect((await git([...header, 'push', base, 'main'], small)).code).toBe(0);
  const before = (await git([...header, 'ls-remote', base])).stdout;
  await fs.writeFile(path.join(small, 'big.bin'), randomBytes(256 * 1024)); // incompressible
  await git(['add', '-A'], small);
  await git(['commit', '-qm', 'big'], small);
  const push = await git([...header, 'push', base, 'main'], small);
  expect(push.code).not.toBe(0);
  expect(push.stderr).toMatch(/pack exceeds maximum allowed size|413/);
  expect((await git([...header, 'ls-remote', base])).stdout).toBe(before);
});

test('fetches beyond the per-repository limit get 429 with Retry-After; the slot frees when the client leaves', async () => {
  // A repository whose full fetch is far larger than the socket buffers, pushed through the platform.
  const big = await localRepo({ 'big.bin': randomBytes(16 * 1024 * 1024).toString('base64') });
  const fixture = await createTenantWithAdmin();
  const name = uniqueName('big');
  await api('POST', '/api/v1/repos', { token: fixture.token, body: { owner: fixture.tenant, name } });
  expect((await git(['push', cloneUrl(fixture.tenant, name, fixture.token), 'main'], big)).code).toBe(0);
  const head = (await git(['rev-parse', 'HEAD'], big)).stdout.trim();
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/${fixture.tenant}/${name}.git/git-upload-pack`;
  const admin = { ...principal, platformAdmin: true };
  const headers = { 'x-dotgit-identity': await signIdentity(platformInfo().internalSecret, admin, 'limits'), 'content-type': 'application/x-git-upload-pack-request' };
  const pkt = (t: string) => (t.length + 4).toString(16).padStart(4, '0') + t;
  const body = pkt(`want ${head} side-band-64k\n`) + '0000' + pkt('done\n');

  // The first fetch holds the only slot: its answer is never read, so git blocks on a full pipe.
  const held = http.request(url, { method: 'POST', headers });
  held.on('error', () => undefined);
  // Answering means it holds the slot (taken before git starts), however slow the machine.
  const answering = new Promise<void>((resolve) => held.on('response', (r) => (r.pause(), resolve())));
  held.end(body);
  await answering;
  const second = await fetch(url, { method: 'POST', headers, body });
  expect(second.status).toBe(429);
  expect(second.headers.get('retry-after')).toBe('5');
  expect((await second.json()).error.code).toBe('too_many_requests');
  held.destroy();
  // The slot frees once the server sees the client gone: within seconds, not at once.
  let third = await fetch(url, { method: 'POST', headers, body });
  for (const until = Date.now() + 15_000; third.status === 429 && Date.now() < until; ) {
    await third.arrayBuffer();
    await new Promise((r) => setTimeout(r, 250));
    third = await fetch(url, { method: 'POST', headers, body });
  }
  expect(third.status).toBe(200);
  expect((await third.arrayBuffer()).byteLength).toBeGreaterThan(1024 * 1024);
}, 120_000);
