import { freePort } from '../../infra/provision/free-port';
import { ID_BLOCK_SIZE, fanOut, liveDatabases, migrateAllDatabases } from '../../core/shard-databases';
import { resolveShardMap } from '../../core/shard-map';
import { createShardRouter, type ShardRouter } from '../../core/shard-router';
import { shardOf } from '../../core/shards';
import { copyTenantEverywhere, TenantDirectory } from '../../core/tenant-directory';
import { countPush, insertRepo, upsertReplicaState } from '../../core/stores/repos-store';
import { placeReplicas, placeRepo } from '../../core/storage-nodes';
import { placementOf, registerNode, upToDateReplicaNodes } from '../../core/stores/storage-nodes-store';
import { setShardPlacement } from '../../core/stores/shard-placements-store';
import { insertTenant } from '../../core/stores/tenants-store';
import { appliedMigrationNames } from '../../core/stores/server-store';
import { startShardServers, type ShardServers } from '../helpers/shard-databases';

/**
 * The shard router over three physical databases (three embedded Postgres servers of the test's
 * own; ADR 0025): migrations on every one, placements from the map, tenants' rows on the database
 * their hash says and nowhere else, ids unique across databases, live placements and refresh.
 */

let servers: ShardServers;
let router: ShardRouter;

beforeAll(async () => {
  servers = await startShardServers(3);
  router = await createShardRouter({ databaseUrl: servers.globalUrl, shardMap: servers.map }, { max: 4 });
  await migrateAllDatabases(router, resolveShardMap(servers.map, servers.globalUrl));
}, 180_000);

afterAll(async () => {
  await router?.close();
  await servers?.stop();
});

const count = async (db: ReturnType<ShardRouter['forShard']>, sql: string, args: unknown[] = []) => Number((await db.query(sql, args)).rows[0].n);

test('every database is migrated alike; placements come from the map; each database has its own id block', async () => {
  const dbs = router.databases();
  expect(dbs.map((d) => d.name)).toEqual(['global', 'db2', 'db3']);
  expect(dbs.map((d) => d.shards)).toEqual([[0, 3, 6], [1, 4, 7], [2, 5]]);
  const applied = await Promise.all(dbs.map((d) => appliedMigrationNames(d.db)));
  expect(applied[0].length).toBeGreaterThan(20);
  expect(applied[1].sort()).toEqual(applied[0].sort());
  expect(applied[2].sort()).toEqual(applied[0].sort());
  const placements = (await router.global.query('SELECT shard, database FROM shard_placements ORDER BY shard')).rows;
  expect(placements.map((p) => p.database)).toEqual(servers.map.shards);
  const blocks = (await router.global.query('SELECT name, id_block FROM shard_databases ORDER BY id_block')).rows;
  expect(blocks).toEqual([{ name: 'global', id_block: 0 }, { name: 'db2', id_block: 1 }, { name: 'db3', id_block: 2 }]);
});

test("tenants land on the shard the hash says, and a tenant's rows appear in no other database", async () => {
  const directory = new TenantDirectory(router);
  const tenants = [];
  for (let i = 0; i < 12; i++) {
    const t = await insertTenant(router.global, `shard-t${i}-${process.pid}`);
    await copyTenantEverywhere(router, { ...t, createdAt: new Date() });
    tenants.push(t);
  }
  for (const t of tenants) {
    const { db, tenantId } = (await directory.shardOfName(t.name))!;
    expect(tenantId).toBe(t.id);
    expect(db).toBe(router.forShard(shardOf(t.id)));
    const repo = await insertRepo(db, { tenantId: t.id, name: 'web', visibility: 'private', nodeId: null, replicaNodes: [] });
    // Ids of a database are in its block, so they never collide with another database's.
    const home = router.databases().find((d) => d.db === db)!;
    const block = home.name === 'global' ? 0 : home.name === 'db2' ? 1 : 2;
    expect(Math.floor(repo.id / ID_BLOCK_SIZE)).toBe(block);
  }
  // Every database holds exactly the repositories of the tenants whose shards it holds.
  const perDb = await fanOut(router, async (db, d) => ({ name: d.name, shards: d.shards, owners: (await db.query<{ tenant_id: string }>('SELECT tenant_id FROM repos ORDER BY tenant_id')).rows.map((r) => Number(r.tenant_id)) }));
  for (const d of perDb) {
    const expected = tenants.filter((t) => d.shards.includes(shardOf(t.id))).map((t) => t.id).sort((a, b) => a - b);
    expect(d.owners).toEqual(expected);
  }
  expect(perDb.flatMap((d) => d.owners)).toHaveLength(tenants.length);
  // The shards the 12 tenants fall on cover all three databases (so the check above means something).
  expect(perDb.every((d) => d.owners.length > 0)).toBe(true);
  // The SQL shard function is the same hash.
  for (const t of tenants) expect(Number((await router.global.query('SELECT dotgit_shard_of($1) AS s', [t.id])).rows[0].s)).toBe(shardOf(t.id));
  // The tenant directory (a reference table) is on every database.
  for (const d of router.databases()) expect(await count(d.db, 'SELECT count(*) AS n FROM tenants WHERE name LIKE $1', [`shard-t%-${process.pid}`])).toBe(12);
});

test('a live placement wins over the map once written, and refresh() picks it up', async () => {
  const before = router.forShard(5);
  expect(router.databases().find((d) => d.db === before)!.name).toBe('db3');
  await setShardPlacement(router.global, 5, 'db2');
  expect(router.forShard(5)).toBe(before);
  await router.refresh();
  expect(router.databases().find((d) => d.db === router.forShard(5))!.name).toBe('db2');
  // A new process reads the live placement too, whatever its map says.
  const other = await createShardRouter({ databaseUrl: servers.globalUrl, shardMap: servers.map }, { max: 1 });
  try {
    expect(other.databases().find((d) => d.name === 'db2')!.shards).toEqual([1, 4, 5, 7]);
  } finally {
    await other.close();
  }
  await setShardPlacement(router.global, 5, 'db3');
  await router.refresh();
});

test('start-up refuses a database it cannot reach, naming it; and a live placement on a database the map lacks', async () => {
  const port = await freePort();
  const unreachable = { databases: { ...servers.map.databases, db4: `postgres://postgres:secret@127.0.0.1:${port}/dotgit` }, shards: [...servers.map.shards.slice(0, 7), 'db4'] };
  await expect(createShardRouter({ databaseUrl: servers.globalUrl, shardMap: unreachable })).rejects.toThrow(/shard map: database "db4" \(postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:\d+\/dotgit\) cannot be reached/);
  await setShardPlacement(router.global, 7, 'db9');
  try {
    await expect(createShardRouter({ databaseUrl: servers.globalUrl, shardMap: servers.map })).rejects.toThrow(/shard 7 is placed on database "db9"/);
  } finally {
    await setShardPlacement(router.global, 7, 'db2');
  }
});

test("every tenant-owned table's primary and foreign keys lead with tenant_id (Citus co-location; migrations 0026, 0037)", async () => {
  // The tables ADR 0025 places in the tenant's shard; a key that does not lead with tenant_id
  // could cross tenants, so a co-located shard could not hold it.
  const sharded = ['repos', 'permissions', 'protected_branches', 'lfs_objects', 'repo_replicas', 'runs', 'steps', 'artifacts', 'run_attempts', 'run_attempt_steps', 'job_outputs', 'pipeline_caches', 'deploys', 'secrets', 'webhooks', 'webhook_deliveries', 'push_outbox', 'webhook_outbox', 'replication_outbox', 'push_journal', 'repo_schedules', 'schedule_outbox'];
  const { rows } = await router.forShard(1).query(
    `SELECT c.conrelid::regclass::text AS tbl, c.conname, c.contype, a.attname AS first
       FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
      WHERE c.contype IN ('p', 'f') AND c.conrelid::regclass::text = ANY($1)`,
    [sharded],
  );
  expect(new Set(rows.filter((r) => r.contype === 'p').map((r) => r.tbl))).toEqual(new Set(sharded));
  expect(rows.filter((r) => r.contype === 'f').map((r) => r.tbl)).toEqual(expect.arrayContaining(['pipeline_caches', 'run_attempts', 'run_attempt_steps', 'job_outputs']));
  expect(rows.filter((r) => r.first !== 'tenant_id').map((r) => `${r.tbl}.${r.conname}`)).toEqual([]);
});

test('storage nodes are global, their repositories in the shards: placement reads and counts span the databases', async () => {
  // A tenant whose shard is not on the global database, with repositories on node a of two.
  let tenant: { id: number; name: string } | undefined;
  for (let i = 0; !tenant; i++) {
    const t = await insertTenant(router.global, `nodes-t${i}-${process.pid}`);
    if (router.forTenant(t.id) !== router.global) tenant = t;
    await copyTenantEverywhere(router, { ...t, createdAt: new Date() });
  }
  const [a, b] = [`a-${process.pid}`, `b-${process.pid}`];
  await registerNode(router.global, a, 'http://127.0.0.1:1');
  await registerNode(router.global, b, 'http://127.0.0.1:2');
  const db = router.forTenant(tenant.id);
  const repo = await insertRepo(db, { tenantId: tenant.id, name: 'held', visibility: 'private', nodeId: a, replicaNodes: [b] });
  const held2 = await insertRepo(db, { tenantId: tenant.id, name: 'held2', visibility: 'private', nodeId: a, replicaNodes: [] });
  const all = liveDatabases(router).map((d) => ({ db: d.db, shards: d.scope }));
  // Counted in every database: a holds two repositories there, so b gets the next one (the global database alone sees none: a by id).
  expect(await placeRepo(router.global, [a, b], all)).toBe(b);
  expect(await placeRepo(router.global, [a, b])).toBe(a);
  expect(await placeReplicas(router.global, [a, b], b, 1, all)).toEqual([a]);
  // The node router's reads: the repository on its shard, the node from the global database.
  expect(await placementOf(db, tenant.name, 'held', router.global)).toEqual({ nodeId: a, node: { id: a, url: 'http://127.0.0.1:1', up: true } });
  expect(await placementOf(db, tenant.name, 'nope', router.global)).toBeUndefined();
  expect(await countPush(db, repo.id, 'fp1')).toEqual({ pushesSinceMaintenance: 1, hasReplicaNodes: true });
  await upsertReplicaState(db, { tenantId: tenant.id, repoId: repo.id, zone: `node:${b}`, refsFingerprint: 'fp1', lagSeconds: 0, error: null });
  expect((await upToDateReplicaNodes(db, repo.id, router.global)).map((n) => n.id)).toEqual([b]);
  // A push counted without the refs it left (a reconciliation that found nothing landed) keeps the fingerprint.
  expect(await countPush(db, repo.id)).toEqual({ pushesSinceMaintenance: 2, hasReplicaNodes: true });
  expect((await upToDateReplicaNodes(db, repo.id, router.global)).map((n) => n.id)).toEqual([b]);
  expect(await countPush(db, repo.id, 'fp2')).toEqual({ pushesSinceMaintenance: 3, hasReplicaNodes: true });
  expect(await upToDateReplicaNodes(db, repo.id, router.global)).toEqual([]);
  expect(await countPush(db, held2.id, 'fp3')).toEqual({ pushesSinceMaintenance: 1, hasReplicaNodes: false });
});

test("placement counts during a shard move's grace period count the moved shard's repositories once, in the database the placement names", async () => {
  // Tenant m's shard is on database X with 2 repositories on node c; tenant o's, on another database
  // Y, has 3 on node d. The grace period of m's shard moved to Y: its rows in X (the old copy) and Y.
  const ts: Array<{ id: number; name: string }> = [];
  for (let i = 0; ts.length < 2 && i < 40; i++) {
    const t = await insertTenant(router.global, `grace-t${i}-${process.pid}`);
    await copyTenantEverywhere(router, { ...t, createdAt: new Date() });
    if (ts.length === 0 || router.forTenant(t.id) !== router.forTenant(ts[0].id)) ts.push(t);
  }
  const [m, o] = ts;
  const [x, y] = [m, o].map((t) => router.databases().find((d) => d.db === router.forTenant(t.id))!);
  const [c, d] = [`c-${process.pid}`, `d-${process.pid}`];
  await registerNode(router.global, c, 'http://127.0.0.1:3');
  await registerNode(router.global, d, 'http://127.0.0.1:4');
  const mine: Array<{ id: number; name: string }> = [];
  for (const name of ['m1', 'm2']) mine.push({ name, id: (await insertRepo(x.db, { tenantId: m.id, name, visibility: 'private', nodeId: c, replicaNodes: [] })).id });
  for (const name of ['o1', 'o2', 'o3']) await insertRepo(y.db, { tenantId: o.id, name, visibility: 'private', nodeId: d, replicaNodes: [] });
  expect(await placeRepo(router.global, [c, d], liveDatabases(router).map((l) => ({ db: l.db, shards: l.scope })))).toBe(c);
  // The copy in Y (ids kept, as the move copies), the placement switched: the old copy stays in X until the clean-up.
  for (const r of mine) await y.db.query(`INSERT INTO repos (tenant_id, id, name, visibility, node_id) OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, 'private', $4)`, [m.id, r.id, r.name, c]);
  const shard = shardOf(m.id);
  await setShardPlacement(router.global, shard, y.name);
  try {
    await router.refresh();
    // c holds 2 (not 4, the old copy counted again), d holds 3: c is the least used.
    expect(await placeRepo(router.global, [c, d], liveDatabases(router).map((l) => ({ db: l.db, shards: l.scope })))).toBe(c);
  } finally {
    await setShardPlacement(router.global, shard, x.name);
    await router.refresh();
    await y.db.query('DELETE FROM repos WHERE tenant_id = $1', [m.id]);
  }
});
