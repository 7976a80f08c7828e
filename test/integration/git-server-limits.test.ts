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
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, uniqueName } from '../helpers/api-client';
import { git, localRepo } from '../helpers/git';

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
    hookUrl: `http://127.0.0.1:${info.gitPort}/internal/hooks`,
    publicUrl: info.gatewayUrl,
    onPushRecorded: () => undefined,
    limits: { maxPushBytes: 64 * 1024, uploadPackConcurrency: 1, uploadPackQueue: 0 },
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
  const headers = { 'x-dotgit-identity': await identity(), 'content-type': 'application/x-git-upload-pack-request' };
  // The first fetch holds the only slot: its request body never ends.
  const held = http.request(`${base}/git-upload-pack`, { method: 'POST', headers });
  held.on('error', () => undefined);
  held.write('0032want ');
  await new Promise((r) => setTimeout(r, 300));
  const second = await fetch(`${base}/git-upload-pack`, { method: 'POST', headers, body: '0000' });
  expect(second.status).toBe(429);
  expect(second.headers.get('retry-after')).toBe('5');
  expect((await second.json()).error.code).toBe('too_many_requests');
  held.destroy();
  await new Promise((r) => setTimeout(r, 300));
  const third = await fetch(`${base}/git-upload-pack`, { method: 'POST', headers, body: '0000' });
  expect(third.status).not.toBe(429);
});
