import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { createBackupActivities } from '../../activities/backup-activities';
import { restoreToDir } from '../../core/backup-restore';
import type { BackupManifest } from '../../core/backup-types';
import { FsObjectStore } from '../../core/fs-object-store';
import { repoPath } from '../../core/git';
import { IDENTITY_HEADER, signIdentity } from '../../core/internal-identity';
import { storageQueue } from '../../core/run-types';
import { freePort } from '../../infra/provision/free-port';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, uniqueName, type TenantFixture } from '../helpers/api-client';
import { killAllServices, ownNodePair, startNodesWithApi, startService, stopService, type OwnService } from '../helpers/own-services';
import { git, localRepo, tempDir } from '../helpers/git';
import { createDb, type Db } from '../../core/db';
import { adminPrincipalOf } from '../helpers/principal';

// Backups on storage nodes (issue 11 item 3, ADR 0014): two git-servers of this test's own, n1 and
// n2 (own data dirs), each with a `storage` worker beside it (same data dir and node id, the
// platform's object store). The platform's backup puts both nodes' repositories in its one
// manifest; n2's was bundled by n2's worker, on n2's queue — the platform's orchestration worker
// has no such directory (it is not on its disk) and never took that part.

const info = platformInfo();
const { N1, N2, dirs } = ownNodePair('dotgit-bk-');
const objects = path.join(info.dataDir, 'objects');

let db: Db;
let t: TenantFixture;
let identity: string;
let n1: OwnService;
let n2: OwnService;
let ownApi: OwnService;
const workers: Record<string, OwnService> = {};

async function createRepo(name: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${ownApi.port}/api/v1/repos`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', [IDENTITY_HEADER]: identity },
    body: JSON.stringify({ owner: t.tenant, name }),
  });
  expect(res.status).toBe(201);
  return ((await res.json()) as { node: string }).node;
}

beforeAll(async () => {
  db = createDb(info.databaseUrl, 2);
  t = await createTenantWithAdmin();
  identity = await signIdentity(info.internalSecret, await adminPrincipalOf(db, t), 'backup-nodes');
  [n1, n2, ownApi] = await startNodesWithApi({ N1, N2, dirs });
  // The storage worker beside each node: polls dotgit-storage@<node>, backs up into the shared store.
  for (const [node, dir] of [[N1, dirs.n1], [N2, dirs.n2]] as const) {
    const port = await freePort();
    workers[node] = await startService('worker/main.ts', port, {
      DOTGIT_DATA_DIR: dir,
      DOTGIT_WORKER_PORT: String(port),
      DOTGIT_WORKER_ROLES: 'storage',
      DOTGIT_NODE_ID: node,
      DOTGIT_FS_OBJECTS_DIR: objects,
      DOTGIT_WORKER_DRAIN_SECONDS: '0',
      DOTGIT_QUEUE_METRICS_INTERVAL_SECONDS: '0',
    });
  }
}, 240_000);

afterAll(async () => {
  killAllServices();
  await db?.end();
});

async function takeBackup(body: { full?: boolean } = {}): Promise<string> {
  const r = await api<{ id: string }>('POST', '/api/v1/backups', { token: info.adminToken, body });
  expect(r.status).toBe(202);
  const deadline = Date.now() + 180_000;
  while (Date.now() < deadline) {
    const list = await api<{ backups: Array<{ id: string; status: string; error?: string }> }>('GET', '/api/v1/backups', { token: info.adminToken });
    const b = list.body.backups.find((x) => x.id === r.body.id);
    if (b?.status === 'complete') return r.body.id;
    if (b?.status === 'failed') throw new Error(`backup ${r.body.id} failed: ${b.error}`);
    await new Promise((res) => setTimeout(res, 300));
  }
  throw new Error(`backup ${r.body.id} did not complete`);
}

/** Identities of the workers that took backup `id`'s repository part on `node`'s queue (undefined: none was scheduled there). */
async function partsTakenBy(id: string, node: string): Promise<string[] | undefined> {
  const connection = await Connection.connect({ address: info.temporalAddress });
  try {
    const events = (await new Client({ connection, namespace: info.namespace }).workflow.getHandle(id).fetchHistory()).events ?? [];
    const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'backupRepositories' && e.activityTaskScheduledEventAttributes.taskQueue?.name === storageQueue(node));
    if (!scheduled) return undefined;
    return events.filter((e) => e.activityTaskStartedEventAttributes && String(e.activityTaskStartedEventAttributes.scheduledEventId) === String(scheduled.eventId)).map((e) => e.activityTaskStartedEventAttributes!.identity ?? '');
  } finally {
    await connection.close();
  }
}

const manifestOf = (id: string) => JSON.parse(readFileSync(path.join(objects, 'backups', id, 'manifest.json'), 'utf8')) as BackupManifest;
let names: { a: string; b: string };
let firstBackup: string;

test("a backup holds both nodes' repositories, each bundled by the worker beside its node; a node's share restores on its own", async () => {
  names = { a: uniqueName('bk-n1'), b: uniqueName('bk-n2') };
  // Both nodes empty of this test's repositories: least-used placement puts one on each.
  expect(await createRepo(names.a)).toBe(N1);
  expect(await createRepo(names.b)).toBe(N2);
  const tips: Record<string, string> = {};
  for (const name of Object.values(names)) {
    const work = await localRepo({ 'a.txt': `${name}\n` });
    // Through n1, which forwards n2's repository to n2.
    const push = await git(['-c', `http.extraHeader=${IDENTITY_HEADER}: ${identity}`, 'push', '-q', `http://127.0.0.1:${n1.port}/${t.tenant}/${name}.git`, 'main'], work);
    expect({ code: push.code, stderr: push.stderr }).toEqual({ code: 0, stderr: '' });
    tips[name] = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
  }
  // n2's repository exists on n2's disk only: not where the platform's worker reads.
  expect(existsSync(repoPath(path.join(dirs.n2, 'repos'), t.tenant, names.b))).toBe(true);
  expect(existsSync(repoPath(path.join(info.dataDir, 'repos'), t.tenant, names.b))).toBe(false);

  // Full: the platform's 15-minute schedule may have taken these repositories' bases already.
  const id = await takeBackup({ full: true });
  firstBackup = id;
  const manifest = manifestOf(id);
  for (const [name, node] of [[names.a, N1], [names.b, N2]] as const) {
    const entry = manifest.repos[`${t.tenant}/${name}`];
    expect(entry).toMatchObject({ kind: 'base', node, refs: { 'refs/heads/main': tips[name] } });
    const heads = await git(['bundle', 'list-heads', path.join(objects, entry.chain[0])]);
    expect(heads.stdout).toContain(tips[name]);
  }
  expect(manifest.missedNodes ?? []).not.toContain(N1);
  expect(manifest.missedNodes ?? []).not.toContain(N2);

  // Each node's part ran on its own queue and was taken by the worker beside it (its identity is
  // `<pid>@<host>`), never by the platform's worker.
  expect(await partsTakenBy(id, N2)).toEqual([`${workers[N2].child.pid}@${os.hostname()}`]);
  expect(await partsTakenBy(id, N1)).toEqual([`${workers[N1].child.pid}@${os.hostname()}`]);

  // A fleet host's offline restore takes its own node's share only (npm run restore --node).
  const dir = tempDir('dotgit-bk-restore-');
  const r = await restoreToDir({ store: new FsObjectStore(objects), dir, at: new Date(manifest.finishedAt), repos: Object.values(names).map((n) => `${t.tenant}/${n}`), node: N2, postgres: false, databaseUrl: info.databaseUrl });
  expect(r.repos).toBe(1);
  expect(existsSync(repoPath(path.join(dir, 'repos'), t.tenant, names.a))).toBe(false);
  expect((await git(['--git-dir', repoPath(path.join(dir, 'repos'), t.tenant, names.b), 'rev-parse', 'refs/heads/main'])).stdout.trim()).toBe(tips[names.b]);
}, 300_000);

test("a node that is down misses the backup: its repositories are carried over from the previous one, and the backup says so", async () => {
  const before = manifestOf(await takeBackup());
  // n2 stops; its heartbeat is made stale at once rather than waited for (10 s).
  await stopService(n2);
  await db.query(`UPDATE storage_nodes SET heartbeat_at = now() - interval '1 hour' WHERE id = $1`, [N2]);
  const id = await takeBackup();
  const manifest = manifestOf(id);
  expect(manifest.missedNodes).toContain(N2);
  expect(manifest.missedNodes).not.toContain(N1);
  const b = `${t.tenant}/${names.b}`;
  expect(manifest.repos[b]).toEqual({ ...before.repos[b], kind: 'unchanged' });
  expect(manifest.repos[`${t.tenant}/${names.a}`]).toMatchObject({ node: N1, capturedAt: expect.any(String) });
  expect(manifest.repos[`${t.tenant}/${names.a}`].capturedAt > before.repos[`${t.tenant}/${names.a}`].capturedAt).toBe(true);
  // Nothing was sent to n2's queue (its worker still polls it); the listing names the miss.
  expect(await partsTakenBy(id, N2)).toBeUndefined();
  const listed = (await api<{ backups: Array<{ id: string; status: string; error?: string }> }>('GET', '/api/v1/backups', { token: info.adminToken })).body.backups.find((x) => x.id === id);
  expect(listed).toMatchObject({ status: 'complete', error: expect.stringMatching(/^storage nodes .* missed this backup/) });
}, 300_000);

test("the drill's comparison on a node checks the tips of that node's repositories against its own disk", async () => {
  const onN2 = createBackupActivities({ db, store: new FsObjectStore(objects), reposDir: path.join(dirs.n2, 'repos'), restoresDir: tempDir(), databaseUrl: info.databaseUrl, retentionDays: 7, fullEveryHours: 24, nodeId: N2 });
  expect(await onN2.checkLiveRepos({ backupId: firstBackup, node: N2 })).toEqual({ problems: [] });
  // A worker asked for another node's share refuses rather than judge the wrong disk.
  await expect(onN2.checkLiveRepos({ backupId: firstBackup, node: N1 })).rejects.toThrow(`this worker is storage node ${N2}, not ${N1}`);
  // n2's repository loses the backed-up commit (history rewritten, old objects pruned): the comparison says so.
  const live = repoPath(path.join(dirs.n2, 'repos'), t.tenant, names.b);
  const tip = manifestOf(firstBackup).repos[`${t.tenant}/${names.b}`].refs['refs/heads/main'];
  const orphan = (await git(['--git-dir', live, 'commit-tree', '-m', 'rewritten', '4b825dc642cb6eb9a060e54bf8d69288fbee4904'])).stdout.trim();
  for (const args of [['update-ref', 'refs/heads/main', orphan], ['reflog', 'expire', '--expire=now', '--all'], ['gc', '-q', '--prune=now']]) {
    expect((await git(['--git-dir', live, ...args])).code).toBe(0);
  }
  expect(await onN2.checkLiveRepos({ backupId: firstBackup, node: N2 })).toEqual({ problems: [`${t.tenant}/${names.b}: restored ${tip} is unknown to the live repository`] });
});
