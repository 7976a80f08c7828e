import path from 'node:path';
import { createDb, type Db } from '../../core/db';
import { repoPath } from '../../core/git';
import { IDENTITY_HEADER, signIdentity } from '../../core/internal-identity';
import { freePort } from '../../infra/provision/free-port';
import { platformInfo } from '../harness/platform-info';
import { createTenantWithAdmin, uniqueName, type TenantFixture } from '../helpers/api-client';
import { killAllServices, ownNodePair, startNode, startNodesWithApi, startService, stopService, type OwnService } from '../helpers/own-services';
import { git, localRepo, tempDir } from '../helpers/git';
import { adminPrincipalOf } from '../helpers/principal';

// Replica nodes (issue 11 items 4 and 9, ADR 0014): two git-servers of this test's own, n1 and n2,
// an api of its own configured with just those two and DOTGIT_REPLICA_NODES=1, and a storage-role
// worker beside n1 (same data dir and node id) that runs the replication syncs of n1's repositories
// (the platform's Postgres, Redis and Temporal; the platform's git-servers relay the outbox and its
// orchestration worker runs the `replication` workflow). A repository placed on n1 gets n2 as its
// replica; pushes reach n2 through the replication workflow; while n1 is down n2 serves fetches.

const { N1, N2, dirs } = ownNodePair('dotgit-r');

let db: Db;
let t: TenantFixture;
let identity: string;
let n1: OwnService;
let n2: OwnService;
let ownApi: OwnService;

const via = (p: OwnService, repo: string) => `http://127.0.0.1:${p.port}/${t.tenant}/${repo}.git`;
const gitAuth = () => ['-c', `http.extraHeader=${IDENTITY_HEADER}: ${identity}`];

async function refs(url: string): Promise<string> {
  const r = await git([...gitAuth(), 'ls-remote', url]);
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  return r.stdout;
}

/** The refs of a bare repository on a node's disk. */
async function diskRefs(dir: string, name: string): Promise<string> {
  const r = await git(['--git-dir', repoPath(path.join(dir, 'repos'), t.tenant, name), 'for-each-ref', '--format=%(objectname) %(refname)']);
  return r.stdout;
}

/** Waits (polling, up to 60 s) until n2's recorded copy has the fingerprint of the last push; answers its row. */
async function replicaCaughtUp(name: string): Promise<{ lag_seconds: number | null; refs_fingerprint: string }> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const row = (
      await db.query(
        `SELECT rr.refs_fingerprint, rr.lag_seconds, r.refs_fingerprint AS pushed
           FROM repos r JOIN tenants tn ON tn.id = r.tenant_id
           LEFT JOIN repo_replicas rr ON rr.repo_id = r.id AND rr.zone = $3
          WHERE tn.name = $1 AND r.name = $2`,
        [t.tenant, name, `node:${N2}`],
      )
    ).rows[0];
    if (row?.pushed && row.refs_fingerprint === row.pushed) return row;
    if (Date.now() > deadline) throw new Error(`replica on ${N2} did not catch up: ${JSON.stringify(row)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

beforeAll(async () => {
  const info = platformInfo();
  db = createDb(info.databaseUrl, 2);
  t = await createTenantWithAdmin();
  const principal = await adminPrincipalOf(db, t);
  identity = await signIdentity(info.internalSecret, principal, 'replica-nodes');
  [n1, n2, ownApi] = await startNodesWithApi({ N1, N2, dirs }, { DOTGIT_REPLICA_NODES: '1' });
  const pWorker = await freePort();
  // The storage worker beside n1: polls dotgit-storage@n1, where n1's repositories' syncs run.
  await startService('worker/main.ts', pWorker, { DOTGIT_DATA_DIR: dirs.n1, DOTGIT_WORKER_PORT: String(pWorker), DOTGIT_WORKER_ROLES: 'storage', DOTGIT_NODE_ID: N1, DOTGIT_DRAIN_SECONDS: '0', DOTGIT_WORKER_DRAIN_SECONDS: '0', DOTGIT_QUEUE_METRICS_INTERVAL_SECONDS: '0' });
}, 240_000);

afterAll(async () => {
  killAllServices();
  await db?.end();
});

let name: string;
let work: string;
let before: string;

test('a new repository gets a replica node besides its holder, recorded and named in the answer', async () => {
  name = uniqueName('replicated');
  const res = await fetch(`http://127.0.0.1:${ownApi.port}/api/v1/repos`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', [IDENTITY_HEADER]: identity },
    body: JSON.stringify({ owner: t.tenant, name }),
  });
  // Both nodes empty: the holder is the lower id (n1), the replica the other.
  expect({ status: res.status, body: await res.json() }).toEqual({ status: 201, body: expect.objectContaining({ name, node: N1, replicas: [N2] }) });
  const got = await fetch(`http://127.0.0.1:${ownApi.port}/api/v1/repos/${t.tenant}/${name}`, { headers: { [IDENTITY_HEADER]: identity } });
  expect(await got.json()).toEqual(expect.objectContaining({ node: N1, replicas: [N2] }));
});

test('a push to the holder reaches the replica node: its refs equal the holder\'s and the lag is recorded', async () => {
  work = await localRepo({ 'README.md': 'replicated\n' });
  await git(['tag', 'v1'], work);
  const push = await git([...gitAuth(), 'push', '-q', via(n1, name), 'main', 'v1'], work);
  expect({ code: push.code, stderr: push.stderr }).toEqual({ code: 0, stderr: '' });
  const row = await replicaCaughtUp(name);
  expect(row.lag_seconds).toEqual(expect.any(Number));
  before = await refs(via(n1, name));
  expect(before).toContain('refs/tags/v1');
  expect(await diskRefs(dirs.n2, name)).toBe(await diskRefs(dirs.n1, name));
  // What a node that failed a fetch over sends to another replica node: served from its copy while
  // up to date, refused (421, never sent on) once its recorded copy is not the last push's.
  const commit = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
  const failedOver = () =>
    fetch(`${via(n2, name)}/info/refs?service=git-upload-pack`, { headers: { [IDENTITY_HEADER]: identity, 'x-dotgit-forwarded-by': 'elsewhere', 'x-dotgit-replica-read': '1' } });
  let res = await failedOver();
  expect(res.status).toBe(200);
  expect(await res.text()).toContain(`${commit} refs/heads/main`);
  await db.query(`UPDATE repos SET refs_fingerprint = 'newer' WHERE name = $1 AND node_id = $2`, [name, N1]);
  try {
    res = await failedOver();
    expect(res.status).toBe(421);
  } finally {
    await db.query(`UPDATE repos SET refs_fingerprint = $3 WHERE name = $1 AND node_id = $2`, [name, N1, row.refs_fingerprint]);
  }
}, 90_000);

test('n1 down: a clone through n2 is served by the up-to-date replica with identical refs; a push answers 503 naming n1; a stale replica answers 503', async () => {
  await stopService(n1);
  const commit = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
  const copy = path.join(tempDir('dotgit-rclone-'), 'c');
  // n1's heartbeat is still fresh: the refused connection sends the fetch to the replica.
  const clone = await git([...gitAuth(), 'clone', '-q', via(n2, name), copy], undefined, {}, { timeoutMs: 60_000 });
  expect({ code: clone.code, stderr: clone.stderr }).toEqual({ code: 0, stderr: '' });
  expect((await git(['rev-parse', 'HEAD'], copy)).stdout.trim()).toBe(commit);
  expect((await git(['fsck', '--strict'], copy)).code).toBe(0);
  expect(await refs(via(n2, name))).toBe(before);

  const message = `repository ${t.tenant}/${name} is on storage node ${N1}, which is down; try again later`;
  const probe = (service: string) => fetch(`${via(n2, name)}/info/refs?service=${service}`, { headers: { [IDENTITY_HEADER]: identity } });
  let res = await probe('git-receive-pack');
  expect(res.status).toBe(503);
  expect(res.headers.get('retry-after')).toBe('10');
  expect(((await res.json()) as { error: { message: string } }).error.message).toBe(message);
  const next = await localRepo({ 'README.md': 'while n1 is down\n' });
  const refused = await git([...gitAuth(), 'push', '-q', '--force', via(n2, name), 'main'], next, {}, { timeoutMs: 60_000 });
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toMatch(/503/);

  // n1's heartbeat gone stale: still served by the replica.
  await db.query(`UPDATE storage_nodes SET heartbeat_at = now() - interval '1 minute' WHERE id = $1`, [N1]);
  expect(await refs(via(n2, name))).toBe(before);

  // A replica whose recorded copy is not the last push's is never read from.
  const zone = `node:${N2}`;
  const saved = (await db.query(`SELECT rr.refs_fingerprint FROM repo_replicas rr JOIN repos r ON r.id = rr.repo_id WHERE r.name = $1 AND rr.zone = $2`, [name, zone])).rows[0].refs_fingerprint;
  await db.query(`UPDATE repo_replicas rr SET refs_fingerprint = 'stale' FROM repos r WHERE r.id = rr.repo_id AND r.name = $1 AND rr.zone = $2`, [name, zone]);
  try {
    res = await probe('git-upload-pack');
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { message: string } }).error.message).toBe(message);
  } finally {
    await db.query(`UPDATE repo_replicas rr SET refs_fingerprint = $3 FROM repos r WHERE r.id = rr.repo_id AND r.name = $1 AND rr.zone = $2`, [name, zone, saved]);
  }
}, 120_000);

test('n1 back: a push through n2 works again and the replica catches up', async () => {
  n1 = await startNode(N1, dirs.n1, n1.port);
  await git(['commit', '-q', '--allow-empty', '-m', 'after n1 returned'], work);
  const commit = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
  const push = await git([...gitAuth(), 'push', '-q', via(n2, name), 'main'], work);
  expect({ code: push.code, stderr: push.stderr }).toEqual({ code: 0, stderr: '' });
  await replicaCaughtUp(name);
  expect(await diskRefs(dirs.n2, name)).toBe(await diskRefs(dirs.n1, name));
  expect(await diskRefs(dirs.n2, name)).toContain(`${commit} refs/heads/main`);
  expect(await refs(via(n2, name))).toBe(await refs(via(n1, name)));
}, 120_000);
