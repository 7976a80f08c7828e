import { createHmac } from 'node:crypto';
import http from 'node:http';
import { existsSync, readFileSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { Client, Connection, ScheduleOverlapPolicy } from '@temporalio/client';
import { createDb, type Db } from '../../core/db';
import { startThrowawayPostgres } from '../../core/backup-postgres';
import type { BackupManifest } from '../../core/backup-types';
import { BACKUP_SCHEDULE, RESTORE_DRILL_SCHEDULE } from '../../temporal-config/schedules';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, uniqueName, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, writeFiles } from '../helpers/git';

// Backups through the API on the real platform: incremental repository bundles restored to a
// point in time (identical refs, fsck clean), Postgres point-in-time recovery to an exact instant,
// the schedules, and a restore drill that notices a broken backup.

const info = platformInfo();
const admin = info.adminToken;
const objects = path.join(info.dataDir, 'objects');
let db: Db;
let owner: TenantFixture;

beforeAll(async () => {
  db = createDb(info.databaseUrl, 2);
  owner = await createTenantWithAdmin();
});
afterAll(async () => {
  await db.end();
});

async function takeBackup(body: Record<string, unknown> = {}): Promise<string> {
  const r = await api<{ id: string; status: string }>('POST', '/api/v1/backups', { token: admin, body });
  expect(r.status).toBe(202);
  expect(r.body.status).toBe('running');
  const deadline = Date.now() + 180_000;
  while (Date.now() < deadline) {
    const list = await api<{ backups: Array<{ id: string; status: string; error?: string }> }>('GET', '/api/v1/backups', { token: admin });
    const b = list.body.backups.find((x) => x.id === r.body.id);
    if (b?.status === 'complete') return r.body.id;
    if (b?.status === 'failed') throw new Error(`backup ${r.body.id} failed: ${b.error}`);
    await new Promise((res) => setTimeout(res, 300));
  }
  throw new Error(`backup ${r.body.id} did not complete`);
}

async function restore(body: Record<string, unknown>): Promise<{ id: string; dir: string; backupId: string }> {
  const r = await api<{ id: string }>('POST', '/api/v1/restores', { token: admin, body });
  expect(r.status).toBe(202);
  const deadline = Date.now() + 300_000;
  while (Date.now() < deadline) {
    const s = await api<{ status: string; dir: string; backupId: string; problems: string[] }>('GET', `/api/v1/restores/${r.body.id}`, { token: admin });
    if (s.body.status === 'complete') return { id: r.body.id, dir: s.body.dir, backupId: s.body.backupId };
    if (s.body.status === 'failed') throw new Error(`restore failed: ${s.body.problems.join('; ')}`);
    await new Promise((res) => setTimeout(res, 300));
  }
  throw new Error(`restore ${r.body.id} did not finish`);
}

const manifest = (id: string) => JSON.parse(readFileSync(path.join(objects, 'backups', id, 'manifest.json'), 'utf8')) as BackupManifest;

async function refsOf(gitDir: string): Promise<string> {
  const r = await git(['--git-dir', gitDir, 'for-each-ref', '--format=%(objectname) %(refname)']);
  expect(r.code).toBe(0);
  return r.stdout;
}

const pause = (ms: number) => new Promise((res) => setTimeout(res, ms));

/**
 * `fn` with the platform's 15-minute backup schedule paused (and no scheduled backup still running):
 * one taken between the test's own would change the chain it checks.
 */
async function withScheduledBackupsPaused<T>(fn: () => Promise<T>): Promise<T> {
  const connection = await Connection.connect({ address: info.temporalAddress });
  const schedule = new Client({ connection, namespace: info.namespace }).schedule.getHandle(BACKUP_SCHEDULE.id);
  try {
    await schedule.pause('backup.test.ts: a chain of its own');
    for (const until = Date.now() + 180_000; (await schedule.describe()).info.runningActions.length > 0; ) {
      if (Date.now() > until) throw new Error('a scheduled backup was still running after 180 s');
      await pause(500);
    }
    return await fn();
  } finally {
    // An unpause that fails must not hide the test's own failure; the next test of this file checks the schedule runs.
    await schedule
      .unpause()
      .catch((err: unknown) => console.warn(`could not unpause ${BACKUP_SCHEDULE.id}: ${String(err)}`))
      .finally(() => connection.close());
  }
}

test('backups and restores are for platform admins only, and bad input is refused', async () => {
  expect((await api('POST', '/api/v1/backups', { body: {} })).status).toBe(401);
  expect((await api('POST', '/api/v1/backups', { token: owner.token, body: {} })).status).toBe(403);
  expect((await api('GET', '/api/v1/backups', { token: owner.token })).status).toBe(403);
  expect((await api('POST', '/api/v1/restores', { token: owner.token, body: { at: new Date().toISOString() } })).status).toBe(403);
  expect((await api('POST', '/api/v1/backups', { token: admin, body: { full: 'yes' } })).status).toBe(400);
  for (const body of [{}, { at: 'yesterday' }, { at: 12 }, { at: new Date(Date.now() + 3_600_000).toISOString() }, { at: new Date().toISOString(), repos: ['../x'] }, { at: new Date().toISOString(), repos: 'a/b' }]) {
    const r = await api<{ error: { code: string } }>('POST', '/api/v1/restores', { token: admin, body });
    expect(r.status).toBe(400);
    expect(r.body.error.code).toBe('invalid_input');
  }
  expect((await api('GET', '/api/v1/restores/restore-nope', { token: admin })).status).toBe(404);
});

test('a repository restores from base + increments to the state of any backup: identical refs, fsck clean', () => withScheduledBackupsPaused(async () => {
  const repo = uniqueName('bk');
  expect((await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name: repo, visibility: 'private' } })).status).toBe(201);
  const url = cloneUrl(owner.tenant, repo, owner.token);
  const live = path.join(info.dataDir, 'repos', owner.tenant, `${repo}.git`);
  const work = await localRepo({ 'a.txt': 'one\n' });
  await git(['branch', 'doomed'], work);
  expect((await git(['push', '-o', 'ci.skip', url, 'main', 'doomed'], work)).code).toBe(0);

  const first = await takeBackup({ full: true });
  const refsAtFirst = await refsOf(live);
  expect(manifest(first).repos[`${owner.tenant}/${repo}`].kind).toBe('base');

  // Second state: new commits, a tag, a branch deleted, a new branch on an old commit.
  await writeFiles(work, { 'a.txt': 'two\n', 'b/c.txt': 'x'.repeat(10_000) });
  await git(['add', '-A'], work);
  await git(['commit', '-qm', 'two'], work);
  await git(['tag', '-a', 'v1', '-m', 'v1'], work);
  await git(['branch', 'old', 'HEAD~1'], work);
  expect((await git(['push', '-o', 'ci.skip', url, 'main', 'v1', 'old', ':doomed'], work)).code).toBe(0);
  const second = await takeBackup();
  const refsAtSecond = await refsOf(live);
  expect(refsAtSecond).not.toEqual(refsAtFirst);

  // Third state: a force-push that drops a commit.
  await writeFiles(work, { 'a.txt': 'three\n' });
  await git(['commit', '-qam', 'three'], work);
  await git(['commit', '-q', '--amend', '-m', 'three, amended'], work);
  expect((await git(['push', '-o', 'ci.skip', '--force', url, 'main'], work)).code).toBe(0);
  const third = await takeBackup();
  const refsAtThird = await refsOf(live);

  const entry = manifest(third).repos[`${owner.tenant}/${repo}`];
  expect(entry.kind).toBe('increment');
  expect(entry.chain).toHaveLength(3);
  expect(entry.chain[0]).toContain(`/${first}/`);
  // An unchanged repository costs nothing: no new bundle, same chain.
  const fourth = await takeBackup();
  expect(manifest(fourth).repos[`${owner.tenant}/${repo}`]).toMatchObject({ kind: 'unchanged', chain: entry.chain });
  expect(existsSync(path.join(objects, 'backups', fourth, 'repos', owner.tenant, `${repo}.bundle`))).toBe(false);

  const name = `${owner.tenant}/${repo}`;
  for (const [id, expected] of [[first, refsAtFirst], [second, refsAtSecond], [third, refsAtThird]] as const) {
    const at = manifest(id).finishedAt;
    const r = await restore({ at, repos: [name], postgres: false });
    expect(r.backupId).toBe(id);
    const restored = path.join(r.dir, 'repos', owner.tenant, `${repo}.git`);
    expect(await refsOf(restored)).toEqual(expected);
    expect((await git(['--git-dir', restored, 'fsck', '--full'])).code).toBe(0);
    expect((await git(['--git-dir', restored, 'symbolic-ref', 'HEAD'])).stdout.trim()).toBe('refs/heads/main');
  }
  // Before the first backup there is nothing to restore from.
  const none = await api<{ id: string }>('POST', '/api/v1/restores', { token: admin, body: { at: '2001-01-01T00:00:00Z', postgres: false } });
  expect(none.status).toBe(202);
  let state = '';
  for (let i = 0; i < 100 && state !== 'failed'; i++) {
    state = (await api<{ status: string }>('GET', `/api/v1/restores/${none.body.id}`, { token: admin })).body.status;
    await pause(300);
  }
  expect(state).toBe('failed');
}), 600_000);

test('Postgres point-in-time recovery: restoring to T gives exactly the rows committed by T', async () => {
  await takeBackup(); // a base exists before the rows below, so they come back from archived WAL
  const table = `pitr_${Date.now()}`;
  await db.query(`CREATE TABLE ${table} (n int PRIMARY KEY)`);
  await db.query(`INSERT INTO ${table} SELECT generate_series(1, 3)`);
  // T is passed on with millisecond precision: keep the commit out of T's millisecond.
  await pause(20);
  const t = (await db.query<{ t: Date }>('SELECT clock_timestamp() AS t')).rows[0].t;
  await pause(1500);
  await db.query(`INSERT INTO ${table} SELECT generate_series(4, 6)`);
  await db.query(`DELETE FROM ${table} WHERE n = 1`);

  const r = await restore({ at: t.toISOString(), repos: [`${owner.tenant}/none-such`] });
  const u = new URL(info.databaseUrl);
  const server = await startThrowawayPostgres({ dataDir: path.join(r.dir, 'postgres'), user: decodeURIComponent(u.username), password: decodeURIComponent(u.password) });
  try {
    const rows = await server.query<{ n: number }>(`SELECT n FROM ${table} ORDER BY n`, [], u.pathname.slice(1));
    expect(rows.rows.map((x) => x.n)).toEqual([1, 2, 3]);
    // The restored cluster is a primary of its own (promoted), not still in recovery.
    expect((await server.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0].r).toBe(false);
  } finally {
    await server.stop();
  }
  // The live database went on unaffected.
  expect((await db.query(`SELECT n FROM ${table} ORDER BY n`)).rows.map((x) => x.n)).toEqual([2, 3, 4, 5, 6]);
  // WAL reaches the object store through the archive command.
  expect((await fs.readdir(path.join(objects, 'wal'))).some((f) => /^[0-9A-F]{24}$/.test(f))).toBe(true);
  await fs.rm(r.dir, { recursive: true, force: true });
}, 600_000);

test('the backup and drill schedules exist: every 15 minutes and daily, overlap skip, pausable', async () => {
  const connection = await Connection.connect({ address: info.temporalAddress });
  try {
    const client = new Client({ connection, namespace: info.namespace });
    const backup = client.schedule.getHandle(BACKUP_SCHEDULE.id);
    const d = await backup.describe();
    expect(d.action).toMatchObject({ type: 'startWorkflow', workflowType: 'backup' });
    expect(d.policies.overlap).toBe(ScheduleOverlapPolicy.SKIP);
    expect(d.policies.catchupWindow).toBe(30 * 60_000);
    expect(d.spec.intervals?.[0].every).toBe(15 * 60_000);
    await backup.pause('test');
    expect((await backup.describe()).state.paused).toBe(true);
    await backup.unpause();
    expect((await backup.describe()).state.paused).toBe(false);
    const drill = await client.schedule.getHandle(RESTORE_DRILL_SCHEDULE.id).describe();
    expect(drill.action).toMatchObject({ type: 'startWorkflow', workflowType: 'restoreDrill' });
    expect(drill.spec.intervals?.[0].every).toBe(24 * 3_600_000);
  } finally {
    await connection.close();
  }
});

test('the restore drill passes on a good backup and fails (metric, record, signed alert webhook) on a broken one', async () => {
  // The operator's alert receiver (DOTGIT_ALERT_WEBHOOK_URL of the test platform).
  const alertsReceived: { headers: http.IncomingHttpHeaders; body: string }[] = [];
  const receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      alertsReceived.push({ headers: req.headers, body });
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(info.alertPort, '127.0.0.1', resolve));
  const connection = await Connection.connect({ address: info.temporalAddress });
  const client = new Client({ connection, namespace: info.namespace });
  const workerPid = (JSON.parse(readFileSync(path.join(info.dataDir, 'run', 'worker.pid'), 'utf8')) as { pid: number }).pid;
  const workerPort = /(?:^|\0)DOTGIT_WORKER_PORT=(\d+)/.exec(readFileSync(`/proc/${workerPid}/environ`, 'latin1'))![1];
  const failures = async () => {
    const text = await (await fetch(`http://127.0.0.1:${workerPort}/metrics`)).text();
    return Number(/^dotgit_backup_drill_failures_total (\d+)/m.exec(text)?.[1] ?? 0);
  };
  const drill = async () => {
    const h = await client.workflow.start('restoreDrill', { taskQueue: 'dotgit-orchestration', workflowId: uniqueName('drill'), args: [] });
    return (await h.result()) as { ok: boolean; backupId?: string; problems: string[] };
  };
  let broken: { file: string; bytes: Buffer } | undefined;
  try {
    const id = await takeBackup();
    const before = await failures();
    const good = await drill();
    // The newest backup: ours, unless the 15-minute schedule finished one just after it.
    expect(good).toEqual({ ok: true, backupId: expect.stringMatching(/^backup-/), problems: [] });
    expect(good.backupId! >= id).toBe(true);
    expect(await failures()).toBe(before);
    expect(alertsReceived).toHaveLength(0);

    // Break the newest backup: one of its bundles loses its tail.
    const m = manifest(id);
    const key = Object.values(m.repos).flatMap((e) => e.chain).at(-1)!;
    const file = path.join(objects, key);
    broken = { file, bytes: await fs.readFile(file) };
    await fs.writeFile(file, broken.bytes.subarray(0, Math.floor(broken.bytes.length / 2)));
    const bad = await drill();
    expect(bad.ok).toBe(false);
    expect(bad.problems.join('\n')).toMatch(/restore failed/);
    expect(await failures()).toBe(before + 1);
    const row = (await db.query(`SELECT status, problems FROM restores WHERE kind = 'drill' ORDER BY started_at DESC LIMIT 1`)).rows[0];
    expect(row.status).toBe('failed');
    // The alert arrived before the drill ended, signed with the configured secret.
    expect(alertsReceived).toHaveLength(1);
    const alert = alertsReceived[0];
    expect(alert.headers['x-dotgit-event']).toBe('restore_drill.failed');
    expect(alert.headers['x-hub-signature-256']).toBe(`sha256=${createHmac('sha256', 'test-alert-secret').update(alert.body).digest('hex')}`);
    expect(JSON.parse(alert.body)).toMatchObject({ event: 'restore_drill.failed', detail: { problems: [expect.stringMatching(/restore failed/)] } });
  } finally {
    if (broken) await fs.writeFile(broken.file, broken.bytes);
    await new Promise((resolve) => receiver.close(resolve));
    await connection.close();
  }
}, 600_000);

test("the worker reports each store's backup age from the newest complete backup's manifest (ADR 0028)", async () => {
  const newest = async () => (await db.query<{ id: string }>(`SELECT id FROM backups WHERE status = 'complete' ORDER BY finished_at DESC, id DESC LIMIT 1`)).rows[0]?.id;
  // The earlier tests took backups; the 15-minute schedule may finish one meanwhile, so read it again after the scrape.
  let id: string | undefined;
  let text = '';
  let scrapedAt = 0;
  for (let tries = 0; tries < 3 && (id === undefined || id !== (await newest())); tries++) {
    id = await newest();
    text = await (await fetch(`http://127.0.0.1:${info.workerPort}/metrics`)).text();
    scrapedAt = Date.now();
  }
  expect(id).toBeDefined();
  const m = manifest(id!);
  const ages = new Map([...text.matchAll(/^dotgit_backup_age_seconds\{kind="([^"]+)",store="([^"]+)"\} (\S+)$/gm)].map((x) => [`${x[1]} ${x[2]}`, Number(x[3])]));
  // One series per storage node (or the local disk) the manifest's repositories were read on, aged by the newest read.
  const expected = new Map<string, number>();
  for (const e of Object.values(m.repos)) {
    const key = `repositories ${e.node ?? 'local'}`;
    expected.set(key, Math.max(expected.get(key) ?? 0, Date.parse(e.capturedAt)));
  }
  // Postgres: the global database to the backup's end; on a shard map of several databases
  // (DOTGIT_TEST_SHARD_DATABASES=3) each other one too, to the end of its own base backup (ADR 0045).
  if (m.postgres) expected.set('postgres global', Date.parse(m.finishedAt));
  for (const [name, entry] of Object.entries(m.postgres?.databases ?? {})) expected.set(`postgres ${name}`, Date.parse(entry.finishedAt));
  expect(Object.keys(m.postgres?.databases ?? {}).sort()).toEqual(Object.keys(info.shardMap?.databases ?? {}).sort());
  expect([...ages.keys()].sort()).toEqual([...expected.keys()].sort());
  expect(expected.size).toBeGreaterThan(0);
  for (const [key, at] of expected) {
    // Not older than the copy itself, as measured from this test's clock (same host) after the scrape.
    expect(ages.get(key)).toBeGreaterThanOrEqual(0);
    expect(ages.get(key)).toBeLessThanOrEqual((scrapedAt - at) / 1000 + 1);
  }
});
