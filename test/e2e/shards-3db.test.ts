import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { LIMITS_OUT_OF_THE_WAY, ownPlatformEnv } from '../../infra/own-platform-env';
import { startPlatform, ROOT, type Platform } from '../../infra/platform';
import { unmountAllUnder } from '../../activities/workspace';
import { RunscDriver } from '../../activities/sandbox/runsc-driver';
import { shardOf } from '../../core/shards';
import type { ShardMapConfig } from '../../core/shard-map';
import { Client, Connection } from '@temporalio/client';
import { MAINTENANCE_SCHEDULE } from '../../temporal-config/schedules';
import { createShardRouter, type ShardRouter } from '../../core/shard-router';
import { claimUnplacedRepos } from '../../core/storage-nodes';
import { nodesHoldingReposEverywhere, reposNeedingMaintenanceEverywhere, reposPlacedOnEverywhere, repoTargetsEverywhere } from '../../core/platform-listings';
import { setShardPlacement } from '../../core/stores/shard-placements-store';
import { deleteShardRowsBatch, inUncheckedTransaction, installGuard, shardRowsBatch, tenantTables, upsertRows } from '../../core/stores/shard-move-store';
import { maintenanceWorkflowId, ORCHESTRATION_QUEUE } from '../../core/run-types';
import { insertRepo } from '../../core/stores/repos-store';
import { tempDir } from '../helpers/git';
import { ensurePgTools } from '../../infra/provision/pg-tools';
import { silentLog } from '../../infra/provision/log';
import { FsObjectStore } from '../../core/fs-object-store';
import { readManifest } from '../../core/backup-manifest';
import { restorePostgres, startThrowawayPostgres } from '../../core/backup-postgres';
import { databaseCredentials } from '../../core/db-leader';
import { git, localRepo, runIdsFrom, writeFiles } from '../helpers/git';
import type { ShardMoveResult } from '../../core/shard-moves';
import { startShardServers, type ShardServers } from '../helpers/shard-databases';
import { prepareWalArchiving } from '../../infra/provision/wal-archiving';
import { restoreToDir } from '../../core/backup-restore';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createHousekeepingActivities } from '../../activities/housekeeping-activities';

/**
 * The platform on three physical databases (issue 12 item 2, ADR 0025): three embedded Postgres
 * servers of the test's own, the 8 logical shards spread over them by DOTGIT_SHARD_MAP, the first
 * also the global database. A push becomes a successful pipeline and a deploy succeeds for tenants
 * whose shards are on each of the three, and each tenant's rows are in its shard's database only.
 */

let servers: ShardServers;
/**
 * The map: the servers' round robin turned by one, so shard 0 (the chain of platform-level audit
 * entries, ADR 0025) is on db2, not on the global database.
 */
let map: ShardMapConfig;
let platform: Platform;
let dataDir: string;
let admin: string;
const pools: pg.Pool[] = [];
/** The test's own router on the platform's databases (what a process of the platform holds). */
let router: ShardRouter;
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

/** The test's own pool on a database of the map, by name. */
const poolOf = (database: string) => pools[servers.names.indexOf(database)];

/** Rows of `table` for a tenant, per database name. */
async function rowsPerDatabase(table: string, tenantId: number): Promise<Record<string, number>> {
  const counts = await Promise.all(pools.map(async (p) => Number((await p.query(`SELECT count(*) AS n FROM ${table} WHERE tenant_id = $1`, [tenantId])).rows[0].n)));
  return Object.fromEntries(servers.names.map((name, i) => [name, counts[i]]));
}

beforeAll(async () => {
  dataDir = path.join(ROOT, '.test-data', `shards-3db-${process.pid}`);
  await fs.rm(dataDir, { recursive: true, force: true });
  // Each server archives its WAL into the platform's object store, the global one under `wal/`, the
  // others under `wal@<name>/` (ADR 0043): a restore brings every database to the same instant.
  servers = await startShardServers(3, {
    archiveCommand: (name, pgDataDir) => prepareWalArchiving({ dataDir, objectsDir: path.join(dataDir, 'objects'), pgDataDir, ...(name === 'global' ? {} : { database: name }) }),
  });
  map = { ...servers.map, shards: servers.map.shards.map((_, shard) => servers.names[(shard + 1) % servers.names.length]) };
  for (const s of servers.servers) {
    const p = new pg.Pool({ connectionString: s.databaseUrl, max: 2 });
    p.on('error', () => undefined); // an idle connection ended by a server's shutdown
    pools.push(p);
  }
  platform = await startPlatform({
    env: ownPlatformEnv(dataDir, { DATABASE_URL: servers.globalUrl, DOTGIT_SHARD_MAP: JSON.stringify(map), DOTGIT_RATE_LIMITS: LIMITS_OUT_OF_THE_WAY,
      // A Patroni that does not answer: the switchover route starts its workflow (which then fails), so its audit entry is written.
      DOTGIT_PATRONI_URLS: 'http://127.0.0.1:9',
      // The move under load waits this long before deleting the source's copy (default 300 s).
      DOTGIT_SHARD_MOVE_GRACE_SECONDS: '2',
      // pg_basebackup for the Postgres part of backups: one base backup per database of the map.
      DOTGIT_PG_TOOLS_DIR: (await ensurePgTools({ toolsDir: path.join(ROOT, '.tools'), log: silentLog })).binDir,
    }),
    log: { info: () => {}, debug: () => {}, warn: console.warn },
    ephemeral: true,
  });
  admin = platform.adminToken;
  router = await createShardRouter({ databaseUrl: servers.globalUrl, shardMap: map }, { max: 2 });
  // Tenants until each database holds one's shard (ids are sequential, the hash spreads them).
  for (let i = 0; tenants.length < 3 && i < 20; i++) {
    const t = await call('POST', '/api/v1/tenants', { name: `s3-${i}` });
    expect(t.status).toBe(201);
    const database = map.shards[shardOf(t.body.id)];
    if (!tenants.some((x) => x.database === database)) tenants.push({ name: t.body.name, id: t.body.id, database });
  }
  expect(tenants.map((t) => t.database).sort()).toEqual(['db2', 'db3', 'global']);
}, 300_000);

afterAll(async () => {
  await router?.close();
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
      // A run started through the api too: its start goes through the api's outbox in the tenant's
      // shard, which the api's relay drains on every database (ADR 0024). Handed on from this
      // database, it is cancelled: running it would prove no more than the push's run does.
      const manual = await call('POST', `/api/v1/repos/${t.name}/web/runs`, { ref: 'main' });
      expect(manual.status).toBe(202);
      const shardDb = pools[servers.names.indexOf(t.database)];
      await until(`the start of ${manual.body.id}`, async () => (await shardDb.query('SELECT 1 FROM run_request_outbox WHERE run_id = $1 AND started_at IS NOT NULL AND last_error IS NULL', [manual.body.id])).rows[0]);
      expect((await call('POST', `/api/v1/runs/${encodeURIComponent(manual.body.id)}/cancel`)).status).toBe(202);
      const run = await until(`run ${runId}`, async () => {
        const r = (await call('GET', `/api/v1/runs/${encodeURIComponent(runId)}`)).body;
        return ['success', 'failure', 'cancelled'].includes(r?.status) ? r : undefined;
      });
      expect(run.status).toBe('success');
      expect(run.steps.map((s: { job: string; status: string }) => [s.job, s.status])).toEqual([['build', 'success'], ['test', 'success']]);
      const runs = await call('GET', `/api/v1/repos/${t.name}/web/runs`);
      expect(runs.body.runs.map((r: { id: string }) => r.id).sort()).toEqual([runId, manual.body.id].sort());
    }),
  );
  for (const t of tenants) {
    const elsewhere = (counts: Record<string, number>) => Object.entries(counts).filter(([name, n]) => name !== t.database && n > 0);
    for (const table of ['repos', 'runs', 'steps', 'push_outbox', 'run_request_outbox', 'push_journal', 'audit_log', 'secrets', 'protected_branches', 'permissions']) {
      const counts = await rowsPerDatabase(table, t.id);
      expect({ table, tenant: t.name, here: counts[t.database] > 0, elsewhere: elsewhere(counts) }).toEqual({ table, tenant: t.name, here: true, elsewhere: [] });
    }
    // The tenant directory: the global row and a reference copy in every database.
    for (const p of pools) expect((await p.query('SELECT name FROM tenants WHERE id = $1', [t.id])).rows).toEqual([{ name: t.name }]);
  }
});

test("the maintenance sweep lists every database's repositories and resets each one's counter in its shard", async () => {
  const counters = () =>
    Promise.all(tenants.map(async (t) => (await poolOf(t.database).query('SELECT pushes_since_maintenance::int AS n, last_maintenance_at FROM repos WHERE tenant_id = $1', [t.id])).rows[0] as { n: number; last_maintenance_at: Date | null }));
  expect((await counters()).map((c) => c.n > 0)).toEqual([true, true, true]);
  const connection = await Connection.connect({ address: platform.temporalAddress });
  try {
    await new Client({ connection, namespace: platform.namespace }).schedule.getHandle(MAINTENANCE_SCHEDULE.id).trigger();
  } finally {
    await connection.close();
  }
  // The sweep listed each tenant's repository from its own database; its repack reset the counter there.
  const done = await until('every repository maintained', async () => {
    const c = await counters();
    return c.every((x) => x.n === 0 && x.last_maintenance_at) ? c : undefined;
  }, 90_000);
  expect(done.map((c) => c.n)).toEqual([0, 0, 0]);
});

test("a git-server's start-up claim places unplaced repositories of every database on its node", async () => {
  // A repository from before nodes (no node) of each database's tenant, its bare directory on this disk.
  const reposDir = tempDir('dotgit-claim-');
  const legacy = await Promise.all(tenants.map((t) => insertRepo(router.forTenant(t.id), { tenantId: t.id, name: 'legacy', visibility: 'private', nodeId: null, replicaNodes: [] })));
  try {
    for (const t of tenants) await fs.mkdir(path.join(reposDir, t.name, 'legacy.git'), { recursive: true });
    const claimed = await claimUnplacedRepos(router, 'claim-node', reposDir);
    expect(claimed.sort()).toEqual(tenants.map((t) => `${t.name}/legacy`).sort());
    for (const t of tenants) {
      expect((await poolOf(t.database).query(`SELECT node_id FROM repos WHERE tenant_id = $1 AND name = 'legacy'`, [t.id])).rows).toEqual([{ node_id: 'claim-node' }]);
    }
  } finally {
    await Promise.all(legacy.map((r, i) => poolOf(tenants[i].database).query('DELETE FROM repos WHERE tenant_id = $1 AND id = $2', [tenants[i].id, r.id])));
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

test("a database switchover's audit entry is platform-level: shard 0's chain, on the database holding shard 0", async () => {
  const started = await call('POST', '/api/v1/admin/database/switchover', {});
  expect(started.status).toBe(202);
  const connection = await Connection.connect({ address: platform.temporalAddress });
  try {
    // Patroni is not there: the workflow would only fail after its retries.
    await new Client({ connection, namespace: platform.namespace }).workflow.getHandle(started.body.id).terminate('test: no Patroni here').catch(() => undefined);
  } finally {
    await connection.close();
  }
  const entries = await Promise.all(pools.map(async (p) => (await p.query(`SELECT tenant_id, shard FROM audit_log WHERE action = 'database.switchover'`)).rows));
  const shard0 = map.shards[0];
  expect(Object.fromEntries(servers.names.map((n, i) => [n, entries[i]]))).toEqual(Object.fromEntries(servers.names.map((n) => [n, n === shard0 ? [{ tenant_id: null, shard: 0 }] : []])));
  expect((await call('GET', '/api/v1/audit/verify')).body).toMatchObject({ ok: true });
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

test("a backup completes on the 3-database layout: every tenant's repository, and a base backup of each database, restored by name", async () => {
  // Full: the platform's 15-minute backup schedule may have taken one since start-up, whose recent
  // base an incremental backup would reuse (failed so when the platform was up across a quarter hour).
  const r = await call('POST', '/api/v1/backups', { full: true });
  expect(r.status).toBe(202);
  const b = await until(`backup ${r.body.id}`, async () => {
    const list = (await call('GET', '/api/v1/backups')).body.backups as Array<{ id: string; status: string; repos: number | null; error?: string }>;
    const mine = list.find((x) => x.id === r.body.id);
    return mine && mine.status !== 'running' ? mine : undefined;
  });
  expect(b).toMatchObject({ status: 'complete', postgresBase: true });
  expect(b.repos).toBeGreaterThanOrEqual(tenants.length);
  // The backup's answer names the databases its Postgres part covers.
  const connection = await Connection.connect({ address: platform.temporalAddress });
  try {
    expect(await new Client({ connection, namespace: platform.namespace }).workflow.getHandle(r.body.id).result()).toMatchObject({ postgresBase: true, postgresDatabases: ['global', 'db2', 'db3'] });
  } finally {
    await connection.close();
  }
  // One base backup per database, under its name; db3's restores to a cluster holding db3's tenant's repository only.
  const store = new FsObjectStore(path.join(dataDir, 'objects'));
  const manifest = await readManifest(store, r.body.id);
  expect(Object.keys(manifest.postgres?.databases ?? {}).sort()).toEqual(['db2', 'db3']);
  // Each database has its own backup-age series on the orchestration worker (ADR 0045), its base just taken.
  const worker = platform.instances.find((i) => i.role === 'worker')!;
  const metrics = await (await fetch(`http://127.0.0.1:${worker.port}/metrics`)).text();
  const ages = Object.fromEntries([...metrics.matchAll(/^dotgit_backup_age_seconds\{kind="postgres",store="([^"]+)"\} (\S+)$/gm)].map((x) => [x[1], Number(x[2])]));
  expect(Object.keys(ages).sort()).toEqual(['db2', 'db3', 'global']);
  for (const age of Object.values(ages)) expect(age).toBeLessThan(600);
  // Under the data dir: as root the throwaway server runs as user postgres, which a 0700 temp dir would keep out.
  const target = path.join(dataDir, 'restores', 'test-db3', 'postgres@db3');
  await fs.mkdir(path.dirname(target), { recursive: true });
  const { user, password, database } = databaseCredentials(poolOf('db3').options.connectionString!);
  await restorePostgres({ store, entry: manifest.postgres!.databases!.db3, at: new Date(), targetDir: target, credentials: { user, password }, archived: false });
  const server = await startThrowawayPostgres({ dataDir: target, user, password });
  try {
    const owners = (await server.query<{ tenant_id: string }>('SELECT DISTINCT tenant_id FROM repos', [], database)).rows.map((x) => Number(x.tenant_id));
    expect(owners).toEqual(tenants.filter((t) => t.database === 'db3').map((t) => t.id));
  } finally {
    await server.stop();
  }

  // Point in time across the three databases: rows written after the backup on each are restored
  // up to the instant asked, from each database's own WAL archive (`wal/`, `wal@db2/`, `wal@db3/`).
  for (const name of servers.names) await poolOf(name).query(`CREATE TABLE pitr_probe (n int PRIMARY KEY)`);
  try {
    for (const name of servers.names) await poolOf(name).query(`INSERT INTO pitr_probe VALUES (1)`);
    // Restore points are milliseconds, commit times microseconds: keep the instant clear of both writes.
    await new Promise((res) => setTimeout(res, 50));
    const at = new Date();
    await new Promise((res) => setTimeout(res, 50));
    for (const name of servers.names) await poolOf(name).query(`INSERT INTO pitr_probe VALUES (2)`);
    const dir = path.join(dataDir, 'restores', 'test-pitr');
    const urls = Object.fromEntries(servers.names.filter((n) => n !== 'global').map((n) => [n, poolOf(n).options.connectionString!]));
    const restored = await restoreToDir({ store, dir, at, repos: [], databaseUrl: servers.globalUrl, databaseUrls: urls });
    expect(restored.postgres).toBe(true);
    const seen: Record<string, number[]> = {};
    for (const name of servers.names) {
      const pg2 = await startThrowawayPostgres({ dataDir: path.join(dir, name === 'global' ? 'postgres' : `postgres@${name}`), user, password });
      try {
        seen[name] = (await pg2.query<{ n: number }>('SELECT n FROM pitr_probe ORDER BY n', [], database)).rows.map((x) => x.n);
      } finally {
        await pg2.stop();
      }
    }
    expect(seen).toEqual(Object.fromEntries(servers.names.map((n) => [n, [1]])));
  } finally {
    for (const name of servers.names) await poolOf(name).query(`DROP TABLE IF EXISTS pitr_probe`);
  }
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

test("an activity whose write meets a shard move's fence waits and retries inside its attempt", async () => {
  const t = tenants.find((x) => x.database === 'db3')!;
  const db = poolOf(t.database);
  const repo = (await db.query(`UPDATE repos SET pushes_since_maintenance = 2 WHERE tenant_id = $1 AND name = 'web' RETURNING id, node_id`, [t.id])).rows[0];
  // What a move sets on its source (ADR 0026): the guard trigger on the table and the shard's fence
  // row; while it stands, every write of the shard's rows fails with DGF01.
  await installGuard(router.forTenant(t.id), (await tenantTables(router.forTenant(t.id))).find((x) => x.name === 'repos')!);
  await db.query(`INSERT INTO shard_fences (shard, move_id, state) VALUES ($1, 'test-fence', 'fenced')`, [shardOf(t.id)]);
  await expect(db.query(`UPDATE repos SET pushes_since_maintenance = 2 WHERE tenant_id = $1`, [t.id])).rejects.toMatchObject({ code: 'DGF01' });
  const connection = await Connection.connect({ address: platform.temporalAddress });
  try {
    const client = new Client({ connection, namespace: platform.namespace });
    const handle = await client.workflow.start('repoMaintenance', {
      taskQueue: ORCHESTRATION_QUEUE,
      workflowId: maintenanceWorkflowId(t.name, 'web'),
      args: [{ tenantId: t.id, tenant: t.name, repoId: Number(repo.id), repo: 'web', ...(repo.node_id ? { node: repo.node_id } : {}) }],
    });
    // A move's fence lasts a few seconds; this one is lifted after 3.
    await new Promise((r) => setTimeout(r, 3000));
    await db.query(`DELETE FROM shard_fences WHERE move_id = 'test-fence'`);
    expect(await handle.result()).toEqual({ pushesCovered: 2 });
    // Done in its first attempt: the refused write waited inside it, not for Temporal's retry.
    const attempts = ((await handle.fetchHistory()).events ?? []).flatMap((e) => (e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes.attempt] : []));
    expect(attempts).toEqual([1]);
  } finally {
    await db.query(`DELETE FROM shard_fences WHERE move_id = 'test-fence'`);
    await connection.close();
  }
  expect((await db.query(`SELECT pushes_since_maintenance::int AS n FROM repos WHERE tenant_id = $1 AND name = 'web'`, [t.id])).rows).toEqual([{ n: 0 }]);
});

test("platform-wide listings during a shard move's grace period count each tenant once, from the shard's new database", async () => {
  // The state a move leaves until its clean-up: the shard's rows in the source (fenced) and the
  // target, the live placement on the target. db3's tenant's repositories copied to db2, the shard switched there.
  const t = tenants.find((x) => x.database === 'db3')!;
  const shard = shardOf(t.id);
  const source = poolOf('db3');
  const target = poolOf('db2');
  const rows = (await source.query(`SELECT id, name, visibility, node_id, replica_nodes FROM repos WHERE tenant_id = $1`, [t.id])).rows;
  for (const r of rows) {
    await target.query(`INSERT INTO repos (tenant_id, id, name, visibility, node_id, replica_nodes, pushes_since_maintenance) OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6, 5)`, [t.id, r.id, r.name, r.visibility, r.node_id, r.replica_nodes]);
  }
  await source.query(`UPDATE repos SET pushes_since_maintenance = 9 WHERE tenant_id = $1`, [t.id]);
  // The shard's audit chain copied as the move copies it (ids kept, the append-only guard off).
  const audit = (await tenantTables(router.forShard(shard))).find((x) => x.name === 'audit_log')!;
  const chain = (await shardRowsBatch(router.forShard(shard), audit, shard, undefined, 100_000)).rows;
  expect(chain.length).toBeGreaterThan(0);
  await inUncheckedTransaction(router.forTenant(tenants.find((x) => x.database === 'db2')!.id), (c) => upsertRows(c, audit, chain));
  await setShardPlacement(router.global, shard, 'db2');
  try {
    // The api's platform-wide listings (a platform admin's, every tenant): each of the tenant's
    // repositories and events once, whichever of the two copies the api's placement reads now.
    const listedRepos = ((await call('GET', '/api/v1/repos?limit=1000')).body.repos as Array<{ owner: string; name: string }>).filter((r) => r.owner === t.name).map((r) => r.name);
    expect(listedRepos.sort()).toEqual(rows.map((r) => r.name as string).sort());
    const events = (await call('GET', '/api/v1/audit?limit=1000')).body as { events: Array<{ tenant: string; shard: number; seq: number }>; next: number | null };
    expect(events.next).toBeNull();
    const listedEvents = events.events.filter((e) => e.shard === shard).map((e) => e.seq);
    expect(listedEvents.length).toBe(chain.length);
    expect(new Set(listedEvents).size).toBe(listedEvents.length);
    // Housekeeping's prune leaves the old copy, fenced as a move leaves it, to the clean-up: a
    // handed-on outbox row of the shard old enough to prune stays in the source, and the pass succeeds.
    const db3 = router.databases().find((d) => d.name === 'db3')!.db;
    await installGuard(db3, (await tenantTables(db3)).find((x) => x.name === 'push_outbox')!);
    await source.query(`INSERT INTO push_outbox (tenant_id, run_id, payload, started_at) VALUES ($1, $2, '{}', now() - interval '3 days')`, [t.id, `grace-prune-${t.id}`]);
    await source.query(`INSERT INTO shard_fences (shard, move_id, state) VALUES ($1, 'test-grace', 'fenced')`, [shard]);
    try {
      await router.refresh();
      const housekeeping = createHousekeepingActivities({
        db: router.global, router, restoresDir: path.join(dataDir, 'restores'), sandboxStateDir: path.join(dataDir, 'sandbox'), workspacesDir: path.join(dataDir, 'workspaces'),
        outboxRetentionDays: 1, deliveryLogRetentionDays: 30, deliveryLogKeep: 100, restoreCopyRetentionDays: 7,
      });
      await new MockActivityEnvironment().run(housekeeping.pruneRows);
      expect((await source.query(`SELECT count(*)::int AS n FROM push_outbox WHERE run_id = $1`, [`grace-prune-${t.id}`])).rows).toEqual([{ n: 1 }]);
    } finally {
      await source.query(`DELETE FROM shard_fences WHERE move_id = 'test-grace'`);
      await source.query(`DELETE FROM push_outbox WHERE run_id = $1`, [`grace-prune-${t.id}`]);
    }
    const ids = rows.map((r) => Number(r.id)).sort((a, b) => a - b);
    const maintenance = (await reposNeedingMaintenanceEverywhere(router, 1000)).filter((x) => x.tenantId === t.id);
    expect(maintenance.map((x) => x.repoId).sort((a, b) => a - b)).toEqual(ids);
    expect((await repoTargetsEverywhere(router)).filter((x) => x.tenantId === t.id).map((x) => x.repoId)).toEqual(ids);
    const nodes = [...new Set(rows.flatMap((r) => (r.node_id ? [r.node_id as string] : [])))];
    expect([...(await reposPlacedOnEverywhere(router, nodes)).keys()].filter((k) => k.startsWith(`${t.name}/`)).sort()).toEqual(rows.filter((r) => r.node_id).map((r) => `${t.name}/${r.name}`).sort());
    expect((await nodesHoldingReposEverywhere(router)).up).toEqual(expect.arrayContaining(nodes));
  } finally {
    await setShardPlacement(router.global, shard, 'db3');
    await router.refresh();
    await target.query(`DELETE FROM repos WHERE tenant_id = $1`, [t.id]);
    await deleteShardRowsBatch(router.forTenant(tenants.find((x) => x.database === 'db2')!.id), audit, shard, 100_000);
    await source.query(`UPDATE repos SET pushes_since_maintenance = 0 WHERE tenant_id = $1`, [t.id]);
  }
});

test('a shard moved through the admin api while pushes, runs, api writes and reads go on: nothing lost or doubled, the tenant only in the target', async () => {
  // A tenant of its own, in a shard no other test's tenant is in (other tests keep their databases).
  let t: { name: string; id: number } | undefined;
  for (let i = 0; !t && i < 40; i++) {
    const c = await call('POST', '/api/v1/tenants', { name: `mv-${i}` });
    expect(c.status).toBe(201);
    if (!tenants.some((x) => shardOf(x.id) === shardOf(c.body.id))) t = { name: c.body.name, id: c.body.id };
  }
  const tenant = t!;
  const shard = shardOf(tenant.id);
  const source = map.shards[shard];
  const target = servers.names.find((n) => n !== source && n !== 'global') ?? servers.names.find((n) => n !== source)!;
  const repos = ['r0', 'r1'];
  const pipeline = `jobs:\n  one:\n    steps:\n      - run: "true"\n`;
  const work: Record<string, string> = {};
  const urlOf = (repo: string) => {
    const url = new URL(`${platform.gatewayUrl}/${tenant.name}/${repo}.git`);
    url.username = 'x';
    url.password = admin;
    return url.toString();
  };
  for (const r of repos) {
    expect((await call('POST', '/api/v1/repos', { owner: tenant.name, name: r, visibility: 'private' })).status).toBe(201);
    work[r] = await localRepo({ '.dotgit/pipeline.yml': pipeline });
  }
  /** What the clients were told: acknowledged pushes (sha, runs), 2xx writes; and every refusal seen. */
  const acked: Record<string, string[]> = { r0: [], r1: [] };
  const runIds: string[] = [];
  const createdRepos: string[] = [];
  const secrets: string[] = [];
  const refusals: string[] = [];
  const unexpected: string[] = [];
  let longestRefusedMs = 0;
  let stop = false;

  /** One api call under load: 2xx kept, 503 with Retry-After waited out (its span measured), anything else recorded. */
  const loaded = async (method: string, p: string, body?: unknown): Promise<boolean> => {
    const began = Date.now();
    for (;;) {
      let res: Response;
      try {
        res = await fetch(`${platform.gatewayUrl}${p}`, {
          method,
          headers: { authorization: `Bearer ${admin}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      } catch (e) {
        unexpected.push(`${method} ${p}: ${(e as Error).message}`);
        return false;
      }
      await res.text();
      if (res.ok) {
        if (Date.now() - began > longestRefusedMs) longestRefusedMs = Date.now() - began;
        return true;
      }
      if (res.status === 503 && res.headers.get('retry-after')) {
        refusals.push(`${method} ${p}`);
        await new Promise((r) => setTimeout(r, 250));
        continue;
      }
      unexpected.push(`${method} ${p}: ${res.status}`);
      return false;
    }
  };
  const pushLoop = async (repo: string) => {
    for (let n = 0; !stop; n++) {
      await writeFiles(work[repo], { 'load.txt': `${repo} ${n}\n` });
      await git(['add', '-A'], work[repo]);
      const commit = await git(['commit', '-qm', `load ${n}`], work[repo]);
      if (commit.code !== 0) throw new Error(commit.stderr);
      const sha = (await git(['rev-parse', 'HEAD'], work[repo])).stdout.trim();
      for (;;) {
        const push = await git(['push', urlOf(repo), 'main'], work[repo]);
        if (push.code === 0) {
          acked[repo].push(sha);
          runIds.push(...runIdsFrom(push.stderr));
          // A push every second or two per repository: each starts a run, which the sandbox must get through.
          await new Promise((r) => setTimeout(r, 1500));
          break;
        }
        if (!/\b503\b/.test(push.stderr)) {
          unexpected.push(`push ${repo}: ${push.stderr.trim()}`);
          return;
        }
        refusals.push(`push ${repo}`);
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  };
  const writeLoop = async () => {
    for (let n = 0; !stop; n++) {
      if (await loaded('POST', '/api/v1/repos', { owner: tenant.name, name: `w${n}`, visibility: 'private' })) createdRepos.push(`w${n}`);
      if (await loaded('PUT', `/api/v1/repos/${tenant.name}/r0/secrets/S${n}`, { value: `v${n}` })) secrets.push(`S${n}`);
    }
  };
  const readLoop = async () => {
    while (!stop) {
      await loaded('GET', `/api/v1/repos/${tenant.name}/r0`);
      await loaded('GET', `/api/v1/repos/${tenant.name}/r1/runs`);
    }
  };
  const load = [...repos.map(pushLoop), writeLoop(), readLoop()];
  // Load first, then the move in the middle of it.
  await until('pushes under way', async () => (acked.r0.length > 0 && acked.r1.length > 0 ? true : undefined));
  const started = await call('POST', `/api/v1/admin/shards/${shard}/move`, { toDatabase: target });
  expect(started.status).toBe(202);
  const connection = await Connection.connect({ address: platform.temporalAddress });
  let result: ShardMoveResult;
  try {
    result = await new Client({ connection, namespace: platform.namespace }).workflow.getHandle(started.body.id).result();
  } finally {
    // A few more writes after the clean-up: they land in the target.
    const after = acked.r0.length + acked.r1.length;
    await until('pushes after the move', async () => (acked.r0.length + acked.r1.length >= after + 2 || unexpected.length ? true : undefined)).catch(() => undefined);
    stop = true;
    await Promise.all(load);
    await connection.close();
  }
  console.log(
    `shard move under load: shard ${shard} ${source} -> ${target}, write pause ${result.writePauseMs} ms (workflow), longest client latency (incl. 503 retries) ${longestRefusedMs} ms, ` +
      `${refusals.length} refusals (503), ${result.rowsCopied} rows copied at ${result.rowsPerSecond} rows/s, ${result.catchUpPasses} passes, ${result.changesApplied} changes replayed; ` +
      `pushes ${acked.r0.length + acked.r1.length}, runs ${runIds.length}, repos created ${createdRepos.length}, secrets ${secrets.length}`,
  );
  expect(unexpected).toEqual([]);
  expect(result).toMatchObject({ shard, from: source, to: target, sourceRemoved: true });
  expect(result.tables.filter((x) => !x.ok)).toEqual([]);
  expect((await router.refresh(), router.databases().find((d) => d.shards.includes(shard))!.name)).toBe(target);

  // Every acknowledged push is there: each repository's head is its last acknowledged commit.
  for (const r of repos) {
    const head = (await git(['ls-remote', urlOf(r), 'refs/heads/main'], work[r])).stdout.split('\t')[0];
    expect({ repo: r, head }).toEqual({ repo: r, head: acked[r].at(-1) });
  }
  // Every run reached a terminal state, once: one row per id, and its one step once.
  const terminal = ['success', 'failure', 'cancelled'];
  const runs = await until('every run terminal', async () => {
    const all = await Promise.all(runIds.map(async (id) => (await call('GET', `/api/v1/runs/${encodeURIComponent(id)}`)).body));
    return all.every((r) => terminal.includes(r?.status)) ? all : undefined;
  }, 300_000);
  expect(runs.map((r) => r.status).filter((s) => s !== 'success')).toEqual([]);
  const db = poolOf(target);
  const runRows = (await db.query(`SELECT id, count(*)::int AS n FROM runs WHERE tenant_id = $1 GROUP BY id`, [tenant.id])).rows;
  expect(runRows.map((x) => x.id).sort()).toEqual([...runIds].sort());
  expect(runRows.filter((x) => x.n !== 1)).toEqual([]);
  // One run per acknowledged push: none lost by a hook the fence refused after the ref update.
  const shas = (await db.query(`SELECT commit_sha FROM runs WHERE tenant_id = $1`, [tenant.id])).rows.map((x) => x.commit_sha as string);
  expect([...acked.r0, ...acked.r1].filter((sha) => shas.filter((x) => x === sha).length !== 1)).toEqual([]);
  const steps = (await db.query(`SELECT run_id, count(*)::int AS n FROM steps WHERE tenant_id = $1 GROUP BY run_id`, [tenant.id])).rows;
  expect(steps.filter((x) => x.n !== 1)).toEqual([]);
  expect(steps.length).toBe(runIds.length);
  // Every 2xx write is there, and nothing else.
  const listed = (await call('GET', `/api/v1/repos/${tenant.name}/r0/secrets`)).body.secrets.map((s: string | { name: string }) => (typeof s === 'string' ? s : s.name));
  expect([...listed].sort()).toEqual([...secrets].sort());
  const repoNames = (await db.query(`SELECT name FROM repos WHERE tenant_id = $1`, [tenant.id])).rows.map((x) => x.name);
  expect(repoNames.sort()).toEqual([...repos, ...createdRepos].sort());
  // The tenant's rows of every tenant-owned table are in the target only.
  const elsewhere: string[] = [];
  for (const table of (await tenantTables(router.forTenant(tenant.id))).map((x) => x.name)) {
    const counts = await rowsPerDatabase(table, tenant.id);
    for (const [name, n] of Object.entries(counts)) if (name !== target && n > 0) elsewhere.push(`${table}@${name}: ${n}`);
  }
  expect(elsewhere).toEqual([]);
  expect(await rowsPerDatabase('repos', tenant.id)).toEqual(Object.fromEntries(servers.names.map((n) => [n, n === target ? repos.length + createdRepos.length : 0])));
}, 600_000);
