import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { createDb, type Db } from '../../core/db';
import { restoreIdFor } from '../../core/backup-types';
import { workspaceDir } from '../../activities/workspace';
import type { HousekeepingResult } from '../../activities/housekeeping-activities';
import { MAINTENANCE_SCHEDULE } from '../../temporal-config/schedules';
import { platformInfo } from '../harness/platform-info';
import { api, createPrivateRepo, createTenantWithAdmin, type TenantFixture } from '../helpers/api-client';

// Housekeeping rides on the hourly `dotgit-maintenance` Schedule. On the real platform (default
// retentions: outbox 7 days, delivery log 30 days keeping each hook's newest 100, idempotency keys
// 24 h, restore copies 1 day, sandbox state 6 h), rows and folders are made and aged, the Schedule
// is triggered, and what is past its retention is gone while everything recent, pending or in use stays.

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
let db: Db;
let connection: Connection;
let owner: TenantFixture;
let tenantId: number;
let repoId: number;
let sweep: { repos: number; housekeeping?: HousekeepingResult };
let livePostgres: ChildProcess;
const outboxIds: Record<string, Record<'oldDone' | 'recentDone' | 'oldPending', string>> = {};
const hooks: Record<'busy' | 'busyRecent' | 'quiet', string> = { busy: '', busyRecent: '', quiet: '' };
const copies: Record<string, string> = {};
const idempotency: { present: boolean; oldKey?: string; recentKey?: string } = { present: false };
const sandbox: Record<string, string> = {};

const setMtime = (p: string, ms: number) => fs.utimes(p, new Date(ms), new Date(ms));

async function seedOutboxes() {
  const seeds: Record<string, { columns: string; values: (tag: string) => unknown[] }> = {
    push_outbox: { columns: 'run_id', values: (tag) => [`hk-${process.pid}-${tag}-${Date.now()}`] },
    webhook_outbox: { columns: 'workflow_id', values: (tag) => [`hk-${process.pid}-${tag}-${Date.now()}`] },
    replication_outbox: { columns: 'repo_id', values: () => [repoId] },
  };
  for (const [table, seed] of Object.entries(seeds)) {
    const insert = async (tag: string, createdAgoMs: number, startedAgoMs: number | null) => {
      // A pending row is due in 2100: no relay hands it on during the test.
      const r = await db.query(
        `INSERT INTO ${table} (tenant_id, ${seed.columns}, payload, created_at, started_at, next_attempt_at)
         VALUES ($1, $2, '{"test":"housekeeping"}', now() - make_interval(secs => $3), CASE WHEN $4::float8 IS NULL THEN NULL ELSE now() - make_interval(secs => $4::float8) END,
                 CASE WHEN $4::float8 IS NULL THEN '2100-01-01'::timestamptz ELSE now() END)
         RETURNING id`,
        [tenantId, ...seed.values(tag), createdAgoMs / 1000, startedAgoMs === null ? null : startedAgoMs / 1000],
      );
      return String(r.rows[0].id);
    };
    outboxIds[table] = {
      oldDone: await insert('old', 9 * DAY, 8 * DAY),
      recentDone: await insert('recent', 2 * DAY, 1 * DAY),
      oldPending: await insert('pending', 30 * DAY, null),
    };
  }
}

async function seedDeliveries(repo: string) {
  for (const name of Object.keys(hooks) as (keyof typeof hooks)[]) {
    const r = await api<{ id: string }>('POST', `/api/v1/repos/${owner.tenant}/${repo}/webhooks`, {
      token: owner.token,
      body: { url: `http://127.0.0.1:9/${name}`, secret: 'housekeeping-secret', events: ['push'] },
    });
    expect(r.status).toBe(201);
    hooks[name] = String(r.body.id);
  }
  // Inserted oldest first, so ids ascend with time as real deliveries' do.
  const deliveries = async (hook: string, n: number, agoMs: number) =>
    db.query(
      `INSERT INTO webhook_deliveries (tenant_id, webhook_id, delivery_id, event, attempt, outcome, response_status, duration_ms, started_at, finished_at)
       SELECT $1, $2, gen_random_uuid(), 'push', 1, 'success', 200, 5, t, t FROM (SELECT now() - make_interval(secs => $4) + i * interval '1 second' AS t FROM generate_series(1, $3) i) s`,
      [tenantId, hook, n, agoMs / 1000],
    );
  await deliveries(hooks.busy, 150, 40 * DAY);
  await deliveries(hooks.busy, 5, 1 * DAY);
  await deliveries(hooks.busyRecent, 150, 2 * DAY);
  await deliveries(hooks.quiet, 3, 90 * DAY);
}

async function seedIdempotencyKeys() {
  idempotency.present = (await db.query(`SELECT to_regclass('idempotency_keys') IS NOT NULL AS present`)).rows[0].present;
  if (!idempotency.present) return;
  const keyed = async (key: string, agoMs: number) => {
    const r = await api('POST', '/api/v1/tokens', { token: owner.token, headers: { 'idempotency-key': key }, body: { scopes: ['read'], expiresAt: new Date(Date.now() + HOUR).toISOString() } });
    expect(r.status).toBe(201);
    const aged = await db.query(`UPDATE idempotency_keys SET created_at = now() - make_interval(secs => $2) WHERE key = $1`, [key, agoMs / 1000]);
    expect(aged.rowCount).toBe(1);
    return key;
  };
  idempotency.oldKey = await keyed(`hk-old-${process.pid}-${Date.now()}`, 25 * HOUR);
  idempotency.recentKey = await keyed(`hk-recent-${process.pid}-${Date.now()}`, 23 * HOUR);
}

async function seedRestoreCopies(restoresDir: string) {
  const id = (kind: 'restore' | 'drill', tag: string) => restoreIdFor(kind, new Date(), `${process.pid}${tag}`);
  const make = async (name: string, mtime: number) => {
    const dir = path.join(restoresDir, name);
    await fs.mkdir(path.join(dir, 'repos', 'acme', 'web.git', 'refs'), { recursive: true });
    await fs.writeFile(path.join(dir, 'repos', 'acme', 'web.git', 'HEAD'), 'ref: refs/heads/main\n');
    await fs.mkdir(path.join(dir, 'postgres'), { recursive: true });
    await setMtime(dir, mtime);
    copies[name] = dir;
    return name;
  };
  const record = (rid: string, kind: string, status: string, startedAgoMs: number, finishedAgoMs: number | null, dir: string | null) =>
    db.query(
      `INSERT INTO restores (id, kind, at, status, started_at, finished_at, dir)
       VALUES ($1, $2, now() - interval '1 day', $3, now() - make_interval(secs => $4), CASE WHEN $5::float8 IS NULL THEN NULL ELSE now() - make_interval(secs => $5::float8) END, $6)`,
      [rid, kind, status, startedAgoMs / 1000, finishedAgoMs === null ? null : finishedAgoMs / 1000, dir],
    );
  const now = Date.now();
  // Old drill kept after failing, unrecorded (its row gone): aged by its folder.
  await make(id('drill', 'oldfolder'), now - 3 * DAY);
  // A copy made minutes ago (e.g. npm run restore's, unrecorded): kept.
  await make(id('restore', 'newfolder'), now);
  // A restore finished 3 days ago (its folder touched since): aged by the row, gone, its dir cleared.
  const done = await make(id('restore', 'donerow'), now);
  await record(done, 'restore', 'complete', 3 * DAY + HOUR, 3 * DAY, copies[done]!);
  // A restore still running (started 2 h ago) whose folder is old: in use, kept.
  const running = await make(id('restore', 'running'), now - 3 * DAY);
  await record(running, 'restore', 'running', 2 * HOUR, null, null);
  // A row stuck at running for 3 days (its workflow was terminated): not in use, gone.
  const stale = await make(id('drill', 'stalerun'), now - 3 * DAY);
  await record(stale, 'drill', 'running', 3 * DAY, null, null);
  // An old copy whose Postgres someone started to inspect it: kept while that server runs.
  livePostgres = spawn('sleep', ['600'], { stdio: 'ignore' });
  const inspected = await make(id('restore', 'inspected'), now - 3 * DAY);
  await fs.writeFile(path.join(copies[inspected]!, 'postgres', 'postmaster.pid'), `${livePostgres.pid}\n${copies[inspected]}/postgres\n`);
  await setMtime(copies[inspected]!, now - 3 * DAY);
  // Something of the operator's that is no restore copy: never touched.
  await make('notes-kept-by-the-operator', now - 30 * DAY);
}

async function seedSandboxState(dataDir: string) {
  const old = Date.now() - 7 * HOUR;
  const bundles = path.join(dataDir, 'sandbox', 'bundles');
  sandbox.oldBundle = path.join(bundles, `dotgit-hk-${process.pid}-old`);
  sandbox.newBundle = path.join(bundles, `dotgit-hk-${process.pid}-new`);
  for (const b of [sandbox.oldBundle, sandbox.newBundle]) {
    await fs.mkdir(path.join(b, 'rootfs'), { recursive: true });
    await fs.writeFile(path.join(b, 'config.json'), '{}');
  }
  await setMtime(sandbox.oldBundle, old);
  // A workspace of a run that ended long ago (no run row in progress owns it), and one of a step that just started.
  for (const [key, runId, mtime] of [['oldWorkspace', `run-hk-${process.pid}-old`, old], ['newWorkspace', `run-hk-${process.pid}-new`, Date.now()]] as const) {
    const ws = workspaceDir(path.join(dataDir, 'workspaces'), runId, 'build');
    await fs.mkdir(ws, { recursive: true });
    await fs.writeFile(path.join(ws, 'out.txt'), 'built\n');
    await setMtime(ws, mtime);
    await setMtime(path.dirname(ws), mtime);
    sandbox[key] = path.dirname(ws);
  }
}

/** Triggers the maintenance Schedule and waits for the sweep it started (one started at or after the trigger). */
async function triggerSweep(): Promise<typeof sweep> {
  const client = new Client({ connection, namespace: platformInfo().namespace });
  const schedule = client.schedule.getHandle(MAINTENANCE_SCHEDULE.id);
  const triggeredAt = Date.now();
  await schedule.trigger();
  const deadline = Date.now() + 60_000;
  for (;;) {
    const started = (await schedule.describe()).info.recentActions.filter((a) => a.takenAt.getTime() >= triggeredAt - 1000);
    if (started.length) return client.workflow.getHandle(started.at(-1)!.action.workflow.workflowId).result();
    if (Date.now() > deadline) throw new Error('the maintenance schedule started no sweep within 60 s of its trigger');
    await new Promise((r) => setTimeout(r, 250));
  }
}

beforeAll(async () => {
  const info = platformInfo();
  db = createDb(info.databaseUrl, 2);
  connection = await Connection.connect({ address: info.temporalAddress });
  owner = await createTenantWithAdmin();
  const repo = await createPrivateRepo(owner, 'hk');
  const ids = (await db.query('SELECT r.tenant_id, r.id FROM repos r JOIN tenants t ON t.id = r.tenant_id WHERE t.name = $1 AND r.name = $2', [owner.tenant, repo])).rows[0];
  tenantId = Number(ids.tenant_id);
  repoId = Number(ids.id);
  await seedOutboxes();
  await seedDeliveries(repo);
  await seedIdempotencyKeys();
  await seedRestoreCopies(path.join(info.dataDir, 'restores'));
  await seedSandboxState(info.dataDir);
  sweep = await triggerSweep();
}, 150_000);

afterAll(async () => {
  livePostgres?.kill();
  for (const [table, ids] of Object.entries(outboxIds)) await db?.query(`DELETE FROM ${table} WHERE tenant_id = $1 AND id = ANY($2)`, [tenantId, Object.values(ids)]);
  await db?.query('DELETE FROM restores WHERE id = ANY($1)', [Object.keys(copies)]);
  for (const dir of [...Object.values(copies), ...Object.values(sandbox)]) await fs.rm(dir, { recursive: true, force: true });
  await connection?.close();
  await db?.end();
});

test('the scheduled sweep housekeeps and reports every part done', () => {
  expect(sweep.housekeeping).toBeDefined();
  expect(sweep.housekeeping!.failed).toEqual([]);
});

test('outbox rows handed on more than 7 days ago are deleted; recent and still pending rows stay', async () => {
  for (const [table, ids] of Object.entries(outboxIds)) {
    const left = (await db.query(`SELECT id::text FROM ${table} WHERE tenant_id = $1 AND id = ANY($2)`, [tenantId, Object.values(ids)])).rows.map((r) => r.id);
    expect({ table, left: left.sort() }).toEqual({ table, left: [ids.recentDone, ids.oldPending].sort() });
    expect(sweep.housekeeping!.rows![table as 'push_outbox']).toBeGreaterThanOrEqual(1);
  }
});

test('delivery-log rows older than 30 days are deleted beyond each hook\'s newest 100; a quiet hook keeps its history', async () => {
  const count = async (hook: string, olderThanDays: number) =>
    (await db.query(`SELECT count(*)::int AS n FROM webhook_deliveries WHERE webhook_id = $1 AND finished_at < now() - make_interval(days => $2)`, [hook, olderThanDays])).rows[0].n;
  // busy: 150 old + 5 recent → the newest 100 (5 recent, 95 old) stay.
  expect(await count(hooks.busy, 0)).toBe(100);
  expect(await count(hooks.busy, 30)).toBe(95);
  const oldest = (await db.query(`SELECT min(finished_at) AS t, max(finished_at) AS newest FROM webhook_deliveries WHERE webhook_id = $1 AND finished_at < now() - interval '30 days'`, [hooks.busy])).rows[0];
  // The oldest 55 went, not some other 55: 95 consecutive seconds remain.
  expect((oldest.newest as Date).getTime() - (oldest.t as Date).getTime()).toBe(94_000);
  // busyRecent: 150 within the retention → all stay, however many.
  expect(await count(hooks.busyRecent, 0)).toBe(150);
  // quiet: 3 rows of 90 days ago → all stay.
  expect(await count(hooks.quiet, 0)).toBe(3);
  expect(sweep.housekeeping!.rows!.webhook_deliveries).toBeGreaterThanOrEqual(55);
});

test('idempotency keys older than 24 hours are deleted (skipped, and said so, while the table does not exist)', async () => {
  if (!idempotency.present) {
    expect(sweep.housekeeping!.rows!.idempotency_keys).toBeNull();
    return;
  }
  const left = (await db.query('SELECT key FROM idempotency_keys WHERE key = ANY($1)', [[idempotency.oldKey, idempotency.recentKey]])).rows.map((r) => r.key);
  expect(left).toEqual([idempotency.recentKey]);
  expect(sweep.housekeeping!.rows!.idempotency_keys).toBeGreaterThanOrEqual(1);
});

test('restore copies that ended more than a day ago are removed; running, recent, inspected and foreign folders stay', async () => {
  const present = Object.fromEntries(Object.entries(copies).map(([name, dir]) => [name.replace(/^.*-\d+/, ''), existsSync(dir)]));
  expect(present).toEqual({ oldfolder: false, newfolder: true, donerow: false, running: true, stalerun: false, inspected: true, 'notes-kept-by-the-operator': true });
  const removed = sweep.housekeeping!.restoreCopies!.removed;
  expect(removed).toEqual(expect.arrayContaining(Object.keys(copies).filter((n) => /(oldfolder|donerow|stalerun)$/.test(n))));
  const done = Object.keys(copies).find((n) => n.endsWith('donerow'));
  expect((await db.query('SELECT dir FROM restores WHERE id = $1', [done])).rows[0].dir).toBeNull();
});

test('orphaned sandbox bundles and workspaces untouched for 6 hours are removed; fresh ones stay', () => {
  expect(Object.fromEntries(Object.entries(sandbox).map(([k, p]) => [k, existsSync(p)]))).toEqual({ oldBundle: false, newBundle: true, oldWorkspace: false, newWorkspace: true });
  expect(sweep.housekeeping!.sandbox!.removed).toBeGreaterThanOrEqual(2);
});

test('what housekeeping removed is counted on the worker\'s /metrics', async () => {
  const text = await (await fetch(`http://127.0.0.1:${platformInfo().workerPort}/metrics`)).text();
  const counted = (what: string) => Number(new RegExp(`^dotgit_housekeeping_removed_total\\{what="${what}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
  expect(counted('push_outbox')).toBeGreaterThanOrEqual(1);
  expect(counted('webhook_deliveries')).toBeGreaterThanOrEqual(55);
  expect(counted('restore_copies')).toBeGreaterThanOrEqual(3);
  expect(counted('sandbox_state')).toBeGreaterThanOrEqual(2);
});
