import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fs } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { createDb, type Db } from '../../core/db';
import { fingerprintOf, readRefs, syncZone, zoneRefs, ZoneUnavailableError } from '../../core/replica-sync';
import { replicationWorkflowId, type ReconcileResult } from '../../core/replication-types';
import { ORCHESTRATION_QUEUE } from '../../core/run-types';
import { REPLICA_RECONCILE_SCHEDULE } from '../../temporal-config/schedules';
import { ROOT } from '../../infra/root';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, uniqueName, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, tempDir, writeFiles } from '../helpers/git';

// Replication on the real platform, whose global setup configures one root zone `b`
// (`<data dir>/zones/b`): pushes reach it (lag recorded and exported), a zone taken away catches
// up when it returns, the scheduled reconciliation repairs a diverged replica, and fetches fail
// over to an up-to-date replica when the primary copy is gone (never to a stale one). A url zone
// (a second git-server of the installation) receives mirrors through its internal endpoint.

const info = platformInfo();
const zoneRoot = path.join(info.dataDir, 'zones', 'b');
const primaryOf = (repo: string) => path.join(info.dataDir, 'repos', owner.tenant, `${repo}.git`);
const replicaOf = (repo: string) => path.join(zoneRoot, owner.tenant, `${repo}.git`);
let db: Db;
let temporal: Client;
let owner: TenantFixture;

beforeAll(async () => {
  db = createDb(info.databaseUrl, 2);
  temporal = new Client({ connection: await Connection.connect({ address: info.temporalAddress }), namespace: info.namespace });
  owner = await createTenantWithAdmin();
});
afterAll(async () => {
  await db.end();
  await temporal.connection.close();
});

async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await probe().catch(() => undefined);
    if (v) return v;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const refsEqual = async (a: string, b: string) => fingerprintOf(await readRefs(a)) === fingerprintOf(await readRefs(b));

/**
 * Until the repository's replication has settled: its state records the primary's refs and its
 * workflow runs no sync, on two looks a second apart. A sync still running for an earlier push
 * would otherwise undo drift a test makes on purpose.
 */
async function replicationSettled(name: string): Promise<void> {
  const idle = async () => {
    if ((await replicaRow(name))?.refs_fingerprint !== fingerprintOf(await readRefs(primaryOf(name)))) return false;
    const d = await temporal.workflow.getHandle(replicationWorkflowId(owner.tenant, name)).describe();
    return d.status.name !== 'RUNNING' || (d.raw.pendingActivities ?? []).length === 0;
  };
  await waitFor('replication to settle', async () => (await idle()) && (await new Promise((r) => setTimeout(r, 1000))) === undefined && idle());
}

/** A repository with one pushed commit (and a tag); answers its name and the local work tree. */
async function pushedRepo(): Promise<{ name: string; work: string }> {
  const name = uniqueName('rep');
  const r = await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name, visibility: 'private' } });
  expect(r.status).toBe(201);
  const work = await localRepo({ 'README.md': '# replicated\n' });
  await git(['tag', 'v1'], work);
  const p = await git(['push', cloneUrl(owner.tenant, name, owner.token), 'main', 'v1'], work);
  expect(p.code).toBe(0);
  return { name, work };
}

async function commitAndPush(work: string, name: string, file: string): Promise<string> {
  await writeFiles(work, { [file]: `${file} ${Date.now()}\n` });
  await git(['add', '-A'], work);
  await git(['commit', '-q', '-m', file], work);
  const p = await git(['push', cloneUrl(owner.tenant, name, owner.token), 'main'], work);
  expect(p.code).toBe(0);
  return (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
}

const replicaRow = async (name: string) =>
  (await db.query(`SELECT rr.* FROM repo_replicas rr JOIN repos r ON r.id = rr.repo_id JOIN tenants t ON t.id = r.tenant_id WHERE t.name = $1 AND r.name = $2 AND rr.zone = 'b'`, [owner.tenant, name])).rows[0];

test('a push reaches the replica zone; its lag is recorded and exported on the worker metrics', async () => {
  const { name, work } = await pushedRepo();
  await waitFor('the replica', async () => refsEqual(primaryOf(name), replicaOf(name)));
  const sha = await commitAndPush(work, name, 'second.txt');
  await waitFor('the second push on the replica', async () => (await readRefs(replicaOf(name)))['refs/heads/main'] === sha);
  expect(await readRefs(replicaOf(name))).toEqual(await readRefs(primaryOf(name)));
  expect((await git(['--git-dir', replicaOf(name), 'symbolic-ref', 'HEAD'])).stdout.trim()).toBe('refs/heads/main');
  const row = await waitFor('the replica state', async () => {
    const r = await replicaRow(name);
    return r?.refs_fingerprint === fingerprintOf(await readRefs(primaryOf(name))) && r;
  });
  expect(row.last_error).toBeNull();
  expect(Number(row.lag_seconds)).toBeGreaterThanOrEqual(0);
  expect(Number(row.lag_seconds)).toBeLessThan(30);
  const metrics = await (await fetch(`http://127.0.0.1:${info.workerPort}/metrics`)).text();
  expect(metrics).toMatch(/dotgit_replication_lag_seconds_count\{zone="b"\} [1-9]/);
  // The state through the API, for readers of the repository only.
  const state = await api('GET', `/api/v1/repos/${owner.tenant}/${name}/replicas`, { token: owner.token });
  expect(state.status).toBe(200);
  expect(state.body.replicas).toEqual([{ zone: 'b', kind: 'root', upToDate: true, syncedAt: expect.any(String), lagSeconds: Number(row.lag_seconds), lastError: null }]);
  const stranger = await createTenantWithAdmin();
  expect((await api('GET', `/api/v1/repos/${owner.tenant}/${name}/replicas`, { token: stranger.token })).status).toBe(404);
  // Anonymous: a private repository does not exist for them.
  expect((await api('GET', `/api/v1/repos/${owner.tenant}/${name}/replicas`)).status).toBe(404);
});

test('a zone that was unavailable catches up after it returns', async () => {
  const { name, work } = await pushedRepo();
  // Until the sync has finished (its state recorded last), not only until the refs arrived.
  await waitFor('the replica', async () => (await replicaRow(name))?.refs_fingerprint === fingerprintOf(await readRefs(primaryOf(name))));
  const away = `${zoneRoot}.away`;
  await fs.rename(zoneRoot, away);
  let sha: string;
  try {
    sha = await commitAndPush(work, name, 'while-away.txt');
    // The sync fails and says why; the push itself was not held up.
    const row = await waitFor('the failure to be recorded', async () => {
      const r = await replicaRow(name);
      return r?.last_error && r;
    });
    expect(row.last_error).toMatch(/not available/);
    const state = await api('GET', `/api/v1/repos/${owner.tenant}/${name}/replicas`, { token: owner.token });
    expect(state.body.replicas[0]).toMatchObject({ zone: 'b', upToDate: false, lastError: expect.stringMatching(/not available/) });
    // Longer than the activity's own quick retries (about 2 s): the workflow's backoff must bring the zone back.
    await new Promise((r) => setTimeout(r, 6000));
    expect((await readRefs(path.join(away, owner.tenant, `${name}.git`)))['refs/heads/main']).not.toBe(sha);
  } finally {
    await fs.rename(away, zoneRoot);
  }
  await waitFor('the zone to catch up', async () => (await readRefs(replicaOf(name)))['refs/heads/main'] === sha, 90_000);
  expect(await readRefs(replicaOf(name))).toEqual(await readRefs(primaryOf(name)));
  expect((await git(['--git-dir', replicaOf(name), 'fsck', '--full', '--no-progress'])).code).toBe(0);
  const row = await waitFor('the state to clear', async () => {
    const r = await replicaRow(name);
    return r?.last_error === null && r;
  });
  expect(row.refs_fingerprint).toBe(fingerprintOf(await readRefs(primaryOf(name))));
  const metrics = await (await fetch(`http://127.0.0.1:${info.workerPort}/metrics`)).text();
  expect(metrics).toMatch(/dotgit_replication_sync_failures_total\{zone="b"\} [1-9]/);
}, 180_000);

test('the scheduled reconciliation repairs a deliberately diverged replica', async () => {
  const { name, work } = await pushedRepo();
  const first = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
  await commitAndPush(work, name, 'two.txt');
  await waitFor('the replica', async () => refsEqual(primaryOf(name), replicaOf(name)));
  await replicationSettled(name);
  // Drift: main rewound, a ref the primary never had, a tag gone.
  const replica = replicaOf(name);
  for (const args of [['update-ref', 'refs/heads/main', first], ['update-ref', 'refs/heads/rogue', first], ['update-ref', '-d', 'refs/tags/v1']]) {
    expect((await git(['--git-dir', replica, ...args])).code).toBe(0);
  }
  expect(await refsEqual(primaryOf(name), replica)).toBe(false);
  // The schedule exists (pausable in the Web UI); its workflow is run here directly to read its result.
  const schedule = await temporal.schedule.getHandle(REPLICA_RECONCILE_SCHEDULE.id).describe();
  expect(schedule.action).toMatchObject({ workflowType: REPLICA_RECONCILE_SCHEDULE.workflowType });
  const result = await temporal.workflow.execute<() => Promise<ReconcileResult>>('reconcileReplicas', { workflowId: `reconcile-test-${Date.now()}`, taskQueue: ORCHESTRATION_QUEUE, args: [] });
  expect(result.repaired).toContain(`b ${owner.tenant}/${name}`);
  expect(result.zones).toBe(1);
  expect(await readRefs(replica)).toEqual(await readRefs(primaryOf(name)));
  expect((await readRefs(replica))['refs/heads/rogue']).toBeUndefined();
  // A second pass finds nothing of this repository to repair.
  const again = await temporal.workflow.execute<() => Promise<ReconcileResult>>('reconcileReplicas', { workflowId: `reconcile-test-${Date.now()}-2`, taskQueue: ORCHESTRATION_QUEUE, args: [] });
  expect(again.repaired).not.toContain(`b ${owner.tenant}/${name}`);
}, 180_000);

test('reads fail over to an up-to-date replica when the primary copy is gone, never to a stale one', async () => {
  const { name, work } = await pushedRepo();
  await commitAndPush(work, name, 'failover.txt');
  await waitFor('the replica', async () => refsEqual(primaryOf(name), replicaOf(name)));
  const primary = primaryOf(name);
  const expected = await readRefs(primary);
  const moved = `${primary}.moved`;
  await fs.rename(primary, moved);
  try {
    const clone = path.join(tempDir(), 'clone');
    const c = await git(['clone', '-q', '--mirror', cloneUrl(owner.tenant, name, owner.token), clone]);
    expect(c.code).toBe(0);
    expect(await readRefs(clone)).toEqual(expected);
    expect((await git(['--git-dir', clone, 'fsck', '--full', '--no-progress'])).code).toBe(0);
    const metrics = await (await fetch(`http://127.0.0.1:${info.gitPort}/metrics`)).text();
    expect(metrics).toMatch(/dotgit_replication_read_failovers_total\{zone="b"\} [1-9]/);
    // Pushes are never served by a replica.
    const p = await git(['push', cloneUrl(owner.tenant, name, owner.token), 'main:refs/heads/other'], work);
    expect(p.code).not.toBe(0);

    // A replica that lags the last push is not up to date: the fetch is refused, not answered stale.
    expect((await git(['--git-dir', replicaOf(name), 'update-ref', 'refs/heads/main', (await git(['rev-parse', 'HEAD~1'], work)).stdout.trim()])).code).toBe(0);
    const stale = await git(['ls-remote', cloneUrl(owner.tenant, name, owner.token)]);
    expect(stale.code).not.toBe(0);
    expect(stale.stderr).toMatch(/503/);
  } finally {
    await fs.rename(moved, primary);
  }
  const back = await git(['ls-remote', cloneUrl(owner.tenant, name, owner.token), 'refs/heads/main']);
  expect(back.stdout.split('\t')[0]).toBe(expected['refs/heads/main']);
}, 120_000);

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** A second git-server of this installation (own storage, same Postgres and secret): a url zone. */
async function startZoneServer(dataDir: string, port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'git-server', 'main.ts')], {
    env: {
      ...process.env,
      DOTGIT_DATA_DIR: dataDir,
      DOTGIT_GIT_PORT: String(port),
      DATABASE_URL: info.databaseUrl,
      TEMPORAL_ADDRESS: info.temporalAddress,
      TEMPORAL_NAMESPACE: info.namespace,
      DOTGIT_INTERNAL_SECRET: info.internalSecret,
      DOTGIT_REPLICA_ZONES: '',
      LOG_LEVEL: 'warn',
    },
    stdio: 'ignore',
  });
  await waitFor('the zone git-server', async () => (await fetch(`http://127.0.0.1:${port}/healthz`)).ok, 60_000);
  return child;
}

test('a url zone (another git-server) that was down receives the mirror once it is back; it refuses anything but a replication token', async () => {
  const { name, work } = await pushedRepo();
  await commitAndPush(work, name, 'url-zone.txt');
  const port = await freePort();
  const zone = { name: 'c', url: `http://127.0.0.1:${port}` };
  const t = { owner: owner.tenant, repo: name, primaryDir: primaryOf(name) };
  await expect(syncZone(zone, t, info.internalSecret)).rejects.toBeInstanceOf(ZoneUnavailableError);
  const dataDir = tempDir('dotgit-zone-c-');
  const server = await startZoneServer(dataDir, port);
  try {
    const refs = await syncZone(zone, t, info.internalSecret);
    expect(refs).toEqual(await readRefs(primaryOf(name)));
    const stored = path.join(dataDir, 'repos', owner.tenant, `${name}.git`);
    expect(await readRefs(stored)).toEqual(refs);
    expect((await git(['--git-dir', stored, 'fsck', '--full', '--no-progress'])).code).toBe(0);
    // A force-push and a deleted tag arrive as they are.
    expect((await git(['--git-dir', primaryOf(name), 'update-ref', '-d', 'refs/tags/v1'])).code).toBe(0);
    await syncZone(zone, t, info.internalSecret);
    expect(await zoneRefs(zone, t, info.internalSecret)).toEqual(await readRefs(primaryOf(name)));
    // Deny by default: no token, a user's kind of request, or a token for another repository.
    const url = `${zone.url}/internal/replica/${owner.tenant}/${name}.git/info/refs?service=git-receive-pack`;
    expect((await fetch(url)).status).toBe(401);
    const other = await syncZone(zone, { ...t, repo: `${name}-other` }, 'x'.repeat(40)).catch((e: Error) => e);
    expect(other).toBeInstanceOf(ZoneUnavailableError);
  } finally {
    server.kill('SIGTERM');
    await fs.rm(dataDir, { recursive: true, force: true });
  }
}, 120_000);
