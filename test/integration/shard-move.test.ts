import path from 'node:path';
import { bundleWorkflowCode, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createShardMoveActivities } from '../../activities/shard-move-activities';
import { createDb, inTransaction, type Db } from '../../core/db';
import { migrate } from '../../core/migrate';
import { ORCHESTRATION_QUEUE } from '../../core/run-types';
import { ID_BLOCK_SIZE } from '../../core/shard-databases';
import { isShardFenced, retryWhenFenced } from '../../core/shard-fence';
import { GLOBAL_DATABASE, type ResolvedShardMap } from '../../core/shard-map';
import type { ShardMoveInput, ShardMoveResult } from '../../core/shard-moves';
import { openShardRouter, type ShardRouter } from '../../core/shard-router';
import { shardOf } from '../../core/shards';
import { appendAudit, verifyAuditChains } from '../../core/stores/audit-store';
import { ensureIdBlock, raiseIdentitySequences, seedShardPlacements } from '../../core/stores/shard-placements-store';
import { ROOT } from '../../infra/root';
import { ShardMoveService } from '../../api/services/shard-move-service';
import { ConflictError, InputError, NotAllowedError } from '../../core/errors';
import type { Principal } from '../../core/principal';
import { platformInfo } from '../harness/platform-info';
import { useWorkflowTestEnv } from '../helpers/workflow-env';
import { shardMovePhaseQuery } from '../../workflows/shard-move';

// The online shard move (issue 12 item 3, ADR 0026) with its real activities against two real
// databases on the shared platform's Postgres (`global` and `db2`, each created for this file) and
// a Temporal dev server of its own. Writers of the moved shard's tenants run through the whole move
// on a router of their own that nobody refreshes but the fence (a process with a stale map), so a
// write either lands before the fence in the source (and is carried over) or is refused by the
// fence and retried, after a refresh, in the target. Afterwards every table holds exactly what the
// writers were told was committed: 0 rows lost, 0 duplicated.

const WORKFLOWS = path.join(ROOT, 'workflows', 'index.ts');
const testEnv = useWorkflowTestEnv();
const SHARD_SQL = `get_byte(sha256(decode(tenant_id::text, 'escape')), 3) % 8`;

let admin: Db;
/** The workflow code, bundled once for the workers of every test. */
let workflowBundle: WorkflowBundleWithSourceMap;
const databases: string[] = [];
const routers: ShardRouter[] = [];
let map: ResolvedShardMap;
/** What the "platform" writes through (never refreshed except by the fence). */
let writers: ShardRouter;
/** The worker's own router. */
let workerRouter: ShardRouter;
let shard: number;
let moved: number[];
let other: number;

function urlOf(database: string): string {
  const u = new URL(platformInfo().databaseUrl);
  u.pathname = `/${database}`;
  return u.toString();
}

async function database(name: string): Promise<string> {
  const db = `shard_move_${process.pid}_${name}`;
  await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${db}`);
  databases.push(db);
  return urlOf(db);
}

const dbOf = (r: ShardRouter, name: string) => r.databases().find((d) => d.name === name)!.db;
const placementOf = async (r: ShardRouter, s: number) => (await r.refresh(), r.databases().find((d) => d.shards.includes(s))!.name);
const countShard = async (db: Db, table: string, s: number) => Number((await db.query(`SELECT count(*) AS n FROM ${table} WHERE ${SHARD_SQL} = $1`, [s])).rows[0].n);
const TABLES = ['repos', 'runs', 'steps', 'audit_log'];

beforeAll(async () => {
  workflowBundle = await bundleWorkflowCode({ workflowsPath: WORKFLOWS });
  admin = createDb(platformInfo().databaseUrl, 2);
  map = { databases: [{ name: GLOBAL_DATABASE, url: await database('global') }, { name: 'db2', url: await database('db2') }], shards: Array(8).fill(GLOBAL_DATABASE) };
  writers = await openShardRouter(map, { max: 8 });
  routers.push(writers);
  // Every database migrated, identity sequences in the database's own block (ADR 0025), placements seeded.
  for (const d of writers.databases()) {
    await migrate(d.db);
    const block = await inTransaction(writers.global, (c) => ensureIdBlock(c, d.name, d.name === GLOBAL_DATABASE));
    await raiseIdentitySequences(d.db, block * ID_BLOCK_SIZE);
  }
  await seedShardPlacements(writers.global, map.shards);
  await writers.refresh();
  workerRouter = await openShardRouter(map, { max: 8 });
  routers.push(workerRouter);

  // Tenants (the global directory; db2 carries the same rows, as the schema's foreign keys to
  // tenants ask of every database), until two share a shard and one is elsewhere.
  const ids: number[] = [];
  for (let i = 0; i < 40; i++) {
    const { id } = (await writers.global.query<{ id: number }>(`INSERT INTO tenants (name) VALUES ($1) RETURNING id::int AS id`, [`t${i}`])).rows[0];
    await dbOf(writers, 'db2').query(`INSERT INTO tenants (id, name) OVERRIDING SYSTEM VALUE VALUES ($1, $2)`, [id, `t${i}`]);
    ids.push(id);
  }
  shard = shardOf(ids[0]);
  moved = ids.filter((id) => shardOf(id) === shard).slice(0, 2);
  other = ids.find((id) => shardOf(id) !== shard)!;
  expect(moved).toHaveLength(2);
  // Seed: per tenant 40 repositories, 20 runs each with 2 steps, 5 audit events.
  for (const t of [...moved, other]) {
    const db = writers.forTenant(t);
    await db.query(`INSERT INTO repos (tenant_id, name, visibility) SELECT $1, 'seed' || g, 'private' FROM generate_series(1, 40) g`, [t]);
    await db.query(
      `INSERT INTO runs (tenant_id, id, repo_id, ref, commit_sha, status)
       SELECT $1::bigint, 'seed-' || $1::bigint || '-' || r.id || '-' || g, r.id, 'refs/heads/main', md5(g::text), 'success'
         FROM repos r CROSS JOIN generate_series(1, 20) g WHERE r.tenant_id = $1::bigint`,
      [t],
    );
    await db.query(
      `INSERT INTO steps (tenant_id, run_id, job, name, position, status, exit_code)
       SELECT $1::bigint, r.id, 'build', 'step' || g, g, 'success', 0 FROM runs r CROSS JOIN generate_series(1, 2) g WHERE r.tenant_id = $1::bigint`,
      [t],
    );
    for (let i = 0; i < 5; i++) await appendAudit(db, { tenantId: t, actor: 'seed', action: 'seed', target: `t${t}/${i}` });
  }
}, 120_000);

afterAll(async () => {
  await Promise.allSettled(routers.map((r) => r.close()));
  for (const d of databases) await admin.query(`DROP DATABASE IF EXISTS ${d} WITH (FORCE)`).catch(() => undefined);
  await admin.end();
});

/** A tenant's writer: repositories, runs, steps, status updates, deletes and audit events, each write retried while fenced. */
function startWriter(tenant: number) {
  const expected = { repos: new Set<string>(), runs: new Map<string, string>(), steps: new Set<string>(), audit: 0 };
  const stats = { writes: 0, fencedRetries: 0, maxGapMs: 0, errors: [] as string[] };
  let stop = false;
  let last = Date.now();
  const write = async <T>(fn: (db: Db) => Promise<T>): Promise<T> => {
    const result = await retryWhenFenced(writers, () => fn(writers.forTenant(tenant)), { attempts: 400, delayMs: 25, onFenced: () => void stats.fencedRetries++ });
    const now = Date.now();
    stats.maxGapMs = Math.max(stats.maxGapMs, now - last);
    last = now;
    stats.writes++;
    return result;
  };
  const done = (async () => {
    for (let k = 0; !stop; k++) {
      try {
        const repoId = await write(async (db) => (await db.query<{ id: string }>(`INSERT INTO repos (tenant_id, name, visibility) VALUES ($1, $2, 'private') RETURNING id`, [tenant, `w${k}`])).rows[0].id);
        expected.repos.add(`w${k}`);
        const run = `w-${tenant}-${k}`;
        await write((db) => db.query(`INSERT INTO runs (tenant_id, id, repo_id, ref, commit_sha, status) VALUES ($1, $2, $3, 'refs/heads/main', md5($2), 'queued')`, [tenant, run, repoId]));
        expected.runs.set(run, 'queued');
        await write((db) => db.query(`INSERT INTO steps (tenant_id, run_id, job, name, position, status) VALUES ($1, $2, 'build', 'a', 1, 'running'), ($1, $2, 'build', 'b', 2, 'queued')`, [tenant, run]));
        expected.steps.add(`${run}/a`).add(`${run}/b`);
        await write((db) => db.query(`UPDATE runs SET status = 'success', finished_at = now() WHERE tenant_id = $1 AND id = $2`, [tenant, run]));
        expected.runs.set(run, 'success');
        if (k % 4 === 0) {
          await write((db) => db.query(`DELETE FROM steps WHERE tenant_id = $1 AND run_id = $2`, [tenant, run]));
          expected.steps.delete(`${run}/a`);
          expected.steps.delete(`${run}/b`);
          await write((db) => db.query(`DELETE FROM runs WHERE tenant_id = $1 AND id = $2`, [tenant, run]));
          expected.runs.delete(run);
        }
        if (k % 3 === 0) {
          await write((db) => appendAudit(db, { tenantId: tenant, actor: 'writer', action: 'write', target: run }));
          expected.audit++;
        }
      } catch (err) {
        stats.errors.push((err as Error).message);
        if (stats.errors.length > 5) return;
      }
    }
  })();
  return { expected, stats, stop: async () => ((stop = true), await done) };
}

/** Runs a shard move on a worker of its own; `during` runs once the workflow has started (the worker serving it meanwhile). */
async function moveShard(input: ShardMoveInput, workflowId: string, during?: (h: { phase: () => Promise<string> }) => Promise<void>) {
  const activities = createShardMoveActivities({ router: workerRouter });
  const worker = await Worker.create({ connection: testEnv().nativeConnection, taskQueue: ORCHESTRATION_QUEUE, workflowBundle, activities });
  const handle = await testEnv().client.workflow.start('shardMove', { workflowId, taskQueue: ORCHESTRATION_QUEUE, args: [input] });
  const phase = async () => (await handle.query(shardMovePhaseQuery)).phase;
  return worker.runUntil(async () => {
    if (during) await during({ phase });
    return handle.result().then((r: ShardMoveResult) => ({ ok: true as const, r }), (err: Error) => ({ ok: false as const, err }));
  });
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('a shard moves to another database under continuous writes of its tenants: verified per table, 0 rows lost or duplicated, the write pause measured', async () => {
  const source = dbOf(writers, GLOBAL_DATABASE);
  const target = dbOf(writers, 'db2');
  const otherBefore = await Promise.all(TABLES.map((t) => countShard(source, t, shardOf(other))));
  const load = [...moved, other].map((t) => ({ tenant: t, ...startWriter(t) }));
  await new Promise((r) => setTimeout(r, 500));

  const result = await moveShard({ shard, from: GLOBAL_DATABASE, to: 'db2', graceSeconds: 1, batchRows: 200 }, `shard-move:${shard}`);
  await new Promise((r) => setTimeout(r, 500)); // writes after the move land on the target
  for (const w of load) await w.stop();

  if (!result.ok) throw result.err;
  const r = result.r;
  const pauses = load.map((w) => ({ tenant: w.tenant, moved: moved.includes(w.tenant), writes: w.stats.writes, fencedRetries: w.stats.fencedRetries, longestGapMs: w.stats.maxGapMs }));
  // The measured figures (not asserted as timings: the machine is shared).
  console.log(
    `shard move: shard ${shard} global -> db2, ${r.rowsCopied} rows copied in ${r.copySeconds.toFixed(2)} s (${r.rowsPerSecond} rows/s), ` +
      `${r.catchUpPasses} catch-up passes, ${r.changesApplied} changes replayed, write pause (fence -> switch visible) ${r.writePauseMs} ms; writers: ${JSON.stringify(pauses)}`,
  );
  expect(load.flatMap((w) => w.stats.errors)).toEqual([]);
  expect(r.tables.map((t) => t.table).sort()).toEqual(expect.arrayContaining(TABLES));
  expect(r.tables.filter((t) => !t.ok)).toEqual([]);
  expect(r.sourceRemoved).toBe(true);
  expect(r.rowsCopied).toBeGreaterThan(3000);

  // The placement switched; the source keeps nothing of the shard, and no fence or change log.
  expect(await placementOf(workerRouter, shard)).toBe('db2');
  for (const t of TABLES) expect([t, await countShard(source, t, shard)]).toEqual([t, 0]);
  expect((await source.query('SELECT count(*)::int AS n FROM shard_fences')).rows[0].n).toBe(0);
  expect((await target.query('SELECT count(*)::int AS n FROM shard_fences')).rows[0].n).toBe(0);
  expect((await source.query('SELECT count(*)::int AS n FROM shard_move_changes')).rows[0].n).toBe(0);

  // Exactly what each moved tenant's writer was told was committed (plus the seed), on the target.
  for (const w of load.filter((x) => moved.includes(x.tenant))) {
    const repos = (await target.query<{ name: string }>(`SELECT name FROM repos WHERE tenant_id = $1 AND name LIKE 'w%'`, [w.tenant])).rows.map((x) => x.name);
    expect(repos.sort()).toEqual([...w.expected.repos].sort());
    expect(w.expected.repos.size).toBeGreaterThan(5);
    const runs = (await target.query<{ id: string; status: string }>(`SELECT id, status FROM runs WHERE tenant_id = $1 AND id LIKE 'w-%'`, [w.tenant])).rows;
    expect(Object.fromEntries(runs.map((x) => [x.id, x.status]))).toEqual(Object.fromEntries(w.expected.runs));
    const steps = (await target.query<{ k: string }>(`SELECT run_id || '/' || name AS k FROM steps WHERE tenant_id = $1 AND run_id LIKE 'w-%'`, [w.tenant])).rows.map((x) => x.k);
    expect(steps.sort()).toEqual([...w.expected.steps].sort());
    expect(Number((await target.query(`SELECT count(*) AS n FROM repos WHERE tenant_id = $1 AND name LIKE 'seed%'`, [w.tenant])).rows[0].n)).toBe(40);
    expect(Number((await target.query(`SELECT count(*) AS n FROM runs WHERE tenant_id = $1 AND id LIKE 'seed-%'`, [w.tenant])).rows[0].n)).toBe(800);
    expect(Number((await target.query(`SELECT count(*) AS n FROM audit_log WHERE tenant_id = $1`, [w.tenant])).rows[0].n)).toBe(5 + w.expected.audit);
  }
  // The shard's audit chain moved whole and kept growing on the target: unbroken there.
  const chain = await verifyAuditChains(target, [shard]);
  expect(chain).toEqual(expect.objectContaining({ ok: true }));
  // The other shard's tenant never paused and never left the source.
  const otherWriter = load.find((w) => w.tenant === other)!;
  expect(otherWriter.stats.fencedRetries).toBe(0);
  expect(await countShard(target, 'repos', shardOf(other))).toBe(0);
  const otherAfter = await Promise.all(TABLES.map((t) => countShard(source, t, shardOf(other))));
  expect(otherAfter[0]).toBe(otherBefore[0] + otherWriter.expected.repos.size);
}, 240_000);

test('a move interrupted mid-copy (its worker shut down) resumes on a new worker from the last batch and completes verified', async () => {
  const from = await placementOf(workerRouter, shard);
  const to = from === 'db2' ? GLOBAL_DATABASE : 'db2';
  const input: ShardMoveInput = { shard, from, to, graceSeconds: 0, batchRows: 100 };
  const activities = createShardMoveActivities({ router: workerRouter });
  const first = await Worker.create({ connection: testEnv().nativeConnection, taskQueue: ORCHESTRATION_QUEUE, workflowBundle, activities });
  const handle = await testEnv().client.workflow.start('shardMove', { workflowId: `shard-move:${shard}-resume`, taskQueue: ORCHESTRATION_QUEUE, args: [input] });
  const running = first.run();
  try {
    // Shut the worker down once the copy has made progress (the first tables are copied, the big ones not yet).
    await until('the copy to make progress', async () => (await countShard(dbOf(workerRouter, to), 'repos', shard)) > 0);
  } finally {
    first.shutdown();
    await running;
  }
  expect((await handle.describe()).status.name).toBe('RUNNING');
  const second = await Worker.create({ connection: testEnv().nativeConnection, taskQueue: ORCHESTRATION_QUEUE, workflowBundle, activities });
  const r = (await second.runUntil(handle.result())) as ShardMoveResult;
  // The copy's last attempt was a retry that continued from the interrupted one's heartbeat.
  const events = (await handle.fetchHistory()).events!;
  const copy = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'copyShard')!;
  const started = events.find((e) => Number(e.activityTaskStartedEventAttributes?.scheduledEventId) === Number(copy.eventId))!;
  const completed = events.find((e) => Number(e.activityTaskCompletedEventAttributes?.scheduledEventId) === Number(copy.eventId))!;
  const copied = JSON.parse(Buffer.from(completed.activityTaskCompletedEventAttributes!.result!.payloads![0].data!).toString()) as { rows: number; resumedFrom: number };
  console.log(`interrupted shard move: ${JSON.stringify({ rowsCopied: r.rowsCopied, copyAttempt: started.activityTaskStartedEventAttributes!.attempt, resumedFromRows: copied.resumedFrom })}`);
  expect(started.activityTaskStartedEventAttributes!.attempt).toBeGreaterThan(1);
  expect(copied.resumedFrom).toBeGreaterThan(0);
  expect(copied.resumedFrom).toBeLessThan(copied.rows);
  expect(r.tables.filter((t) => !t.ok)).toEqual([]);
  expect(await placementOf(workerRouter, shard)).toBe(to);
  for (const t of TABLES) expect([t, await countShard(dbOf(workerRouter, from), t, shard)]).toEqual([t, 0]);
}, 240_000);

test('a move whose verify fails rolls back: placement unchanged, fence lifted, the target copy deleted', async () => {
  const from = await placementOf(workerRouter, shard);
  const to = from === 'db2' ? GLOBAL_DATABASE : 'db2';
  const target = dbOf(workerRouter, to);
  const result = await moveShard({ shard, from, to, graceSeconds: 0, batchRows: 500 }, `shard-move:${shard}-rollback`, async ({ phase }) => {
    await until('the copy to start', async () => (await phase()) === 'copying');
    // A row of the shard that only the target has (nothing logs it): the verify must catch it. Written
    // as the copy writes (replica role): the target fences the shard's own writes until the switch.
    await inTransaction(target, async (c) => {
      await c.query('SET LOCAL session_replication_role = replica');
      await c.query(`INSERT INTO repos (tenant_id, name, visibility) VALUES ($1, 'stray', 'private')`, [moved[0]]);
    });
  });
  expect(result.ok).toBe(false);
  const message = (result as { err: { cause?: Error } }).err.cause?.message ?? '';
  expect(message).toMatch(new RegExp(`^moving shard ${shard} from ${from} to ${to} failed and was rolled back: verify failed: repos \\(\\d+ rows on ${from}, \\d+ on ${to}\\)`));
  expect(await placementOf(workerRouter, shard)).toBe(from);
  for (const t of TABLES) expect([t, await countShard(target, t, shard)]).toEqual([t, 0]);
  // Writes to the shard work again where it is (no fence left behind).
  const source = dbOf(workerRouter, from);
  expect((await source.query('SELECT count(*)::int AS n FROM shard_fences')).rows[0].n).toBe(0);
  expect((await target.query('SELECT count(*)::int AS n FROM shard_fences')).rows[0].n).toBe(0);
  await expect(source.query(`INSERT INTO repos (tenant_id, name, visibility) VALUES ($1, 'after-rollback', 'private')`, [moved[0]])).resolves.toBeDefined();
}, 240_000);

test('a write to a fenced shard fails with the fence SQLSTATE in the source database, whatever the writer believes', async () => {
  const where = await placementOf(workerRouter, shard);
  const db = dbOf(workerRouter, where);
  await db.query(`INSERT INTO shard_fences (shard, move_id, state) VALUES ($1, 'test', 'fenced')`, [shard]);
  try {
    const err = await db.query(`UPDATE repos SET visibility = 'public' WHERE tenant_id = $1`, [moved[0]]).then(() => undefined, (e: unknown) => e);
    expect(isShardFenced(err)).toBe(true);
    expect((err as Error).message).toMatch(new RegExp(`shard ${shard} is moving to another database`));
    // Another shard's tenant writes as ever.
    await expect(db.query(`UPDATE repos SET visibility = 'private' WHERE tenant_id = $1`, [other])).resolves.toBeDefined();
  } finally {
    await db.query(`DELETE FROM shard_fences WHERE shard = $1`, [shard]);
  }
});

test('the admin service starts a move of the shard from where it is now (202 answer: workflow id, from, to), refuses a second one while it runs, and anyone but a platform admin', async () => {
  const from = await placementOf(workerRouter, shard);
  const to = from === 'db2' ? GLOBAL_DATABASE : 'db2';
  const principal: Principal = { userId: 1, username: 'root', tenantId: 1, tenantName: 't0', role: 'admin', platformAdmin: true, scopes: ['read', 'write', 'admin'], tokenId: 0 };
  const service = new ShardMoveService(workerRouter, async () => testEnv().client, { graceSeconds: 0, batchRows: 1000 });
  await expect(service.move({ ...principal, platformAdmin: false }, String(shard), { toDatabase: to })).rejects.toBeInstanceOf(NotAllowedError);
  await expect(service.move(principal, String(shard), { toDatabase: 'nowhere' })).rejects.toThrow(new InputError('database "nowhere" is not in the shard map (DOTGIT_SHARD_MAP defines "global", "db2")'));
  await expect(service.move(principal, String(shard), { toDatabase: from })).rejects.toThrow(new ConflictError(`shard ${shard} is already on database "${from}"`));
  const activities = createShardMoveActivities({ router: workerRouter });
  const worker = await Worker.create({ connection: testEnv().nativeConnection, taskQueue: ORCHESTRATION_QUEUE, workflowBundle, activities });
  await worker.runUntil(async () => {
    expect(await service.move(principal, String(shard), { toDatabase: to })).toEqual({ id: `shard-move:${shard}`, shard, from, to });
    await expect(service.move(principal, String(shard), { toDatabase: to })).rejects.toThrow(new ConflictError(`a move of shard ${shard} is already running (shard-move:${shard})`));
    const r = (await testEnv().client.workflow.getHandle(`shard-move:${shard}`).result()) as ShardMoveResult;
    expect(r.tables.every((t) => t.ok)).toBe(true);
  });
  expect(await placementOf(workerRouter, shard)).toBe(to);
  // The move is audited (global chain).
  const audited = await workerRouter.global.query(`SELECT detail FROM audit_log WHERE action = 'shard.move' ORDER BY id DESC LIMIT 1`);
  expect(audited.rows[0].detail).toEqual({ from, to, workflowId: `shard-move:${shard}` });
}, 120_000);

test("moving shard 0 carries the platform-level audit entries (no tenant) with it: shard 0's chain verifies whole on the target, and their writer follows the move", async () => {
  // The other tests move `shard`; this one moves shard 0, whose chain holds the entries without a tenant (ADR 0043).
  expect(shard).not.toBe(0);
  const from = await placementOf(workerRouter, 0);
  const to = from === 'db2' ? GLOBAL_DATABASE : 'db2';
  const source = dbOf(workerRouter, from);
  const target = dbOf(workerRouter, to);
  const shard0 = async (db: Db) => Number((await db.query(`SELECT count(*) AS n FROM audit_log WHERE shard = 0`)).rows[0].n);
  for (let i = 0; i < 5; i++) await appendAudit(writers.forShard(0), { tenantId: null, actor: 'platform', action: 'seed', target: `p${i}` });
  const before = await shard0(source);
  // A writer of platform-level entries on a stale map (the fence is all that tells it the shard moved).
  let stop = false;
  let written = 0;
  const errors: string[] = [];
  const writer = (async () => {
    while (!stop) {
      try {
        await retryWhenFenced(writers, () => appendAudit(writers.forShard(0), { tenantId: null, actor: 'platform', action: 'write', target: `w${written}` }), { attempts: 400, delayMs: 25 });
        written++;
      } catch (err) {
        errors.push((err as Error).message);
        return;
      }
    }
  })();
  const result = await moveShard({ shard: 0, from, to, graceSeconds: 1, batchRows: 200 }, 'shard-move:0');
  await new Promise((r) => setTimeout(r, 300)); // entries after the move land on the target
  stop = true;
  await writer;
  if (!result.ok) throw result.err;
  expect(errors).toEqual([]);
  expect(result.r.tables.filter((t) => !t.ok)).toEqual([]);
  expect(await placementOf(workerRouter, 0)).toBe(to);
  // The whole chain is on the target, each link once, unbroken; nothing of shard 0 stays behind.
  expect(written).toBeGreaterThan(0);
  expect(await shard0(source)).toBe(0);
  expect(await shard0(target)).toBe(before + written);
  expect(await verifyAuditChains(target, [0])).toMatchObject({ ok: true, checked: before + written });
  // And for a reader that picks shard 0's database from the router: the target.
  expect(await verifyAuditChains((s) => workerRouter.forShard(s), [0])).toMatchObject({ ok: true, checked: before + written });
}, 240_000);
