import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { LIMITS_OUT_OF_THE_WAY, ownPlatformEnv } from '../../infra/own-platform-env';
import { startPlatform, ROOT, type Platform } from '../../infra/platform';
import { unmountAllUnder } from '../../activities/workspace';
import { RunscDriver } from '../../activities/sandbox/runsc-driver';
import { shardOf } from '../../core/shards';
import { git, localRepo, runIdsFrom } from '../helpers/git';
import { startShardServers, type ShardServers } from '../helpers/shard-databases';

/**
 * The platform on three physical databases (issue 12 item 2, ADR 0025): three embedded Postgres
 * servers of the test's own, the 8 logical shards spread over them by DOTGIT_SHARD_MAP, the first
 * also the global database. A push becomes a successful pipeline and a deploy succeeds for tenants
 * whose shards are on each of the three, and each tenant's rows are in its shard's database only.
 */

let servers: ShardServers;
let platform: Platform;
let dataDir: string;
let admin: string;
const pools: pg.Pool[] = [];
/** One tenant per database: name, id, database name. */
const tenants: { name: string; id: number; database: string }[] = [];

async function call(method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> {
  const res = await fetch(`${platform.gatewayUrl}${p}`, {
    method,
    headers: { authorization: `Bearer ${admin}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 120_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Rows of `table` for a tenant, per database name. */
async function rowsPerDatabase(table: string, tenantId: number): Promise<Record<string, number>> {
  const counts = await Promise.all(pools.map(async (p) => Number((await p.query(`SELECT count(*) AS n FROM ${table} WHERE tenant_id = $1`, [tenantId])).rows[0].n)));
  return Object.fromEntries(servers.names.map((name, i) => [name, counts[i]]));
}

beforeAll(async () => {
  servers = await startShardServers(3);
  for (const s of servers.servers) {
    const p = new pg.Pool({ connectionString: s.databaseUrl, max: 2 });
    p.on('error', () => undefined); // an idle connection ended by a server's shutdown
    pools.push(p);
  }
  dataDir = path.join(ROOT, '.test-data', `shards-3db-${process.pid}`);
  await fs.rm(dataDir, { recursive: true, force: true });
  platform = await startPlatform({
    env: ownPlatformEnv(dataDir, { DATABASE_URL: servers.globalUrl, DOTGIT_SHARD_MAP: JSON.stringify(servers.map), DOTGIT_RATE_LIMITS: LIMITS_OUT_OF_THE_WAY }),
    log: { info: () => {}, debug: () => {}, warn: console.warn },
    ephemeral: true,
  });
  admin = platform.adminToken;
  // Tenants until each database holds one's shard (ids are sequential, the hash spreads them).
  for (let i = 0; tenants.length < 3 && i < 20; i++) {
    const t = await call('POST', '/api/v1/tenants', { name: `s3-${i}` });
    expect(t.status).toBe(201);
    const database = servers.map.shards[shardOf(t.body.id)];
    if (!tenants.some((x) => x.database === database)) tenants.push({ name: t.body.name, id: t.body.id, database });
  }
  expect(tenants.map((t) => t.database).sort()).toEqual(['db2', 'db3', 'global']);
}, 300_000);

afterAll(async () => {
  await platform?.stop();
  await Promise.allSettled(pools.map((p) => p.end()));
  await servers?.stop();
  if (dataDir) {
    await RunscDriver.releaseState(path.join(dataDir, 'sandbox')).catch(() => undefined);
    // A job's tmpfs workspace may still be mounted just after the worker stopped.
    await unmountAllUnder(dataDir);
    await fs.rm(dataDir, { recursive: true, force: true });
  }
}, 120_000);

const PIPELINE = `jobs:
  build:
    steps:
      - name: hello
        run: echo "hello from $DOTGIT_REPO"
  test:
    needs: [build]
    secrets: [SHARD_SECRET]
    steps:
      - run: test "$SHARD_SECRET" = "s3cret"
environments:
  staging:
    deploy: [{ run: "true" }]
`;

test("a push on each database's tenant runs its pipeline; every row of it is in the tenant's shard database only", async () => {
  await Promise.all(
    tenants.map(async (t) => {
      expect((await call('POST', '/api/v1/repos', { owner: t.name, name: 'web', visibility: 'private' })).status).toBe(201);
      // Users and tokens are global; their audit entries go to the tenant's shard (checked below).
      expect((await call('POST', `/api/v1/tenants/${t.name}/users`, { username: `${t.name}-dev`, role: 'member' })).status).toBe(201);
      expect((await call('POST', '/api/v1/tokens', { username: `${t.name}-dev`, scopes: ['read'] })).status).toBe(201);
      // A grant is the repository's (its shard), the user global: listed by name, revoked by name.
      expect((await call('PUT', `/api/v1/repos/${t.name}/web/collaborators/${t.name}-dev`, { access: 'write' })).status).toBe(200);
      expect((await call('GET', `/api/v1/repos/${t.name}/web/collaborators`)).body.collaborators).toEqual([{ username: `${t.name}-dev`, access: 'write' }]);
      // Secrets and protections are the tenant's rows too (the step reads the secret from its shard).
      expect((await call('PUT', `/api/v1/repos/${t.name}/web/secrets/SHARD_SECRET`, { value: 's3cret' })).status).toBe(204);
      expect((await call('PUT', `/api/v1/repos/${t.name}/web/protections/release`, { allowForcePush: false, allowDeletion: false })).status).toBe(200);
      expect((await call('GET', `/api/v1/repos/${t.name}/web/protections`)).body.protections.map((p: { pattern: string }) => p.pattern)).toEqual(['release']);
      const work = await localRepo({ '.dotgit/pipeline.yml': PIPELINE });
      const url = new URL(`${platform.gatewayUrl}/${t.name}/web.git`);
      url.username = 'x';
      url.password = admin;
      const push = await git(['push', url.toString(), 'main'], work);
      expect(push.code).toBe(0);
      const [runId] = runIdsFrom(push.stderr);
      const run = await until(`run ${runId}`, async () => {
        const r = (await call('GET', `/api/v1/runs/${encodeURIComponent(runId)}`)).body;
        return ['success', 'failure', 'cancelled'].includes(r?.status) ? r : undefined;
      });
      expect(run.status).toBe('success');
      expect(run.steps.map((s: { job: string; status: string }) => [s.job, s.status])).toEqual([['build', 'success'], ['test', 'success']]);
      const runs = await call('GET', `/api/v1/repos/${t.name}/web/runs`);
      expect(runs.body.runs.map((r: { id: string }) => r.id)).toEqual([runId]);
    }),
  );
  for (const t of tenants) {
    const elsewhere = (counts: Record<string, number>) => Object.entries(counts).filter(([name, n]) => name !== t.database && n > 0);
    for (const table of ['repos', 'runs', 'steps', 'push_outbox', 'push_journal', 'audit_log', 'secrets', 'protected_branches', 'permissions']) {
      const counts = await rowsPerDatabase(table, t.id);
      expect({ table, tenant: t.name, here: counts[t.database] > 0, elsewhere: elsewhere(counts) }).toEqual({ table, tenant: t.name, here: true, elsewhere: [] });
    }
    // The tenant directory: the global row and a reference copy in every database.
    for (const p of pools) expect((await p.query('SELECT name FROM tenants WHERE id = $1', [t.id])).rows).toEqual([{ name: t.name }]);
  }
});

test('audit: each tenant lists its own events from its shard; verify walks every chain on its database', async () => {
  for (const t of tenants) {
    const events = await call('GET', `/api/v1/audit?tenant=${t.name}`);
    expect(events.status).toBe(200);
    expect(events.body.events.map((e: { action: string }) => e.action)).toEqual(expect.arrayContaining(['tenant.create', 'user.create', 'token.create', 'repo.create', 'secret.put', 'repo.protect', 'repo.push']));
    expect(events.body.events.every((e: { tenant: string }) => e.tenant === t.name)).toBe(true);
  }
  const all = await call('GET', '/api/v1/audit?limit=1000');
  // The platform-wide listing fans out over the three databases: every tenant's events are in it.
  for (const t of tenants) expect(all.body.events.some((e: { tenant: string; action: string }) => e.tenant === t.name && e.action === 'repo.push')).toBe(true);
  const verify = await call('GET', '/api/v1/audit/verify');
  expect(verify.body).toMatchObject({ ok: true });
  // Every tenant's events are in a chain: the chains checked hold at least one link per tenant made here.
  expect(verify.body.checked).toBeGreaterThanOrEqual(all.body.events.length);
});

test("a deploy on each database's tenant succeeds, recorded in its shard's database only", async () => {
  for (const t of tenants) {
    const d = await call('POST', `/api/v1/repos/${t.name}/web/deploys`, { ref: 'main', environment: 'staging' });
    expect(d.status).toBe(202);
    const done = await until(`deploy ${d.body.id}`, async () => {
      const r = (await call('GET', `/api/v1/deploys/${encodeURIComponent(d.body.id)}`)).body;
      return ['success', 'failure', 'cancelled', 'rolled_back', 'rejected'].includes(r?.status) ? r : undefined;
    });
    expect(done.status).toBe('success');
    const counts = await rowsPerDatabase('deploys', t.id);
    expect(counts).toEqual(Object.fromEntries(servers.names.map((n) => [n, n === t.database ? 1 : 0])));
  }
});

test("a backup completes on the 3-database layout and holds every tenant's repository", async () => {
  const r = await call('POST', '/api/v1/backups', {});
  expect(r.status).toBe(202);
  const b = await until(`backup ${r.body.id}`, async () => {
    const list = (await call('GET', '/api/v1/backups')).body.backups as Array<{ id: string; status: string; repos: number | null; error?: string }>;
    const mine = list.find((x) => x.id === r.body.id);
    return mine && mine.status !== 'running' ? mine : undefined;
  });
  expect(b).toMatchObject({ status: 'complete' });
  // Repositories only: with an external DATABASE_URL no pg_basebackup is configured (ADR 0025: a base backup per database is still to do).
  expect(b.repos).toBeGreaterThanOrEqual(tenants.length);
});

test("replicas and repository moves find each database's tenant's repository in its shard", async () => {
  for (const t of tenants) {
    // Read on the repository's shard: the zones' state (none configured here), not a 404.
    const replicas = await call('GET', `/api/v1/repos/${t.name}/web/replicas`);
    expect({ tenant: t.name, status: replicas.status, body: replicas.body }).toEqual({ tenant: t.name, status: 200, body: { pushedAt: expect.any(String), replicas: [] } });
    // The repository is found on its shard, the node in the global database: an unknown node is a 400.
    const move = await call('POST', `/api/v1/repos/${t.name}/web/move`, { node: 'no-such-node' });
    expect({ tenant: t.name, status: move.status, message: move.body?.error?.message }).toEqual({ tenant: t.name, status: 400, message: 'storage node "no-such-node" is not registered' });
  }
});

test("LFS objects of each database's tenant are recorded in its shard and downloadable", async () => {
  const auth = `Basic ${Buffer.from(`x:${admin}`).toString('base64')}`;
  const lfs = (t: { name: string }, body: unknown) =>
    fetch(`${platform.gatewayUrl}/${t.name}/web.git/info/lfs/objects/batch`, {
      method: 'POST',
      headers: { authorization: auth, accept: 'application/vnd.git-lfs+json', 'content-type': 'application/vnd.git-lfs+json' },
      body: JSON.stringify(body),
    });
  for (const t of tenants) {
    const content = Buffer.from(`lfs object of ${t.name}\n`);
    const oid = createHash('sha256').update(content).digest('hex');
    const up = await lfs(t, { operation: 'upload', transfers: ['basic'], objects: [{ oid, size: content.length }] });
    expect({ tenant: t.name, status: up.status }).toEqual({ tenant: t.name, status: 200 });
    const action = ((await up.json()) as any).objects[0].actions.upload as { href: string; header: Record<string, string> };
    const put = await fetch(action.href, { method: 'PUT', headers: { ...action.header, 'content-type': 'application/octet-stream' }, body: content });
    expect({ tenant: t.name, status: put.status }).toEqual({ tenant: t.name, status: 200 });
    const down = await lfs(t, { operation: 'download', transfers: ['basic'], objects: [{ oid, size: content.length }] });
    expect(((await down.json()) as any).objects[0].actions?.download?.href).toEqual(expect.any(String));
    expect(await rowsPerDatabase('lfs_objects', t.id)).toEqual(Object.fromEntries(servers.names.map((n) => [n, n === t.database ? 1 : 0])));
  }
});
