import { existsSync } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { createDb, type Db } from '../../core/db';
import { repoPath } from '../../core/git';
import { IDENTITY_HEADER, SERVICE_HEADER, signIdentity, signServiceToken } from '../../core/internal-identity';
import type { Principal } from '../../core/principal';
import { journalPrepared, PushReconciler } from '../../git-server/push-journal';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, uniqueName, type TenantFixture } from '../helpers/api-client';
import { killAllServices, ownNodePair, startNode, startNodesWithApi, stopService, type OwnService } from '../helpers/own-services';
import { git, localRepo, tempDir } from '../helpers/git';
import { adminPrincipalOf } from '../helpers/principal';

// Storage nodes (issue 11 item 4, ADR 0014): two git-servers of this test's own, n1 and n2 (own
// data dirs and ports; the shared platform's Postgres, Redis and Temporal), and an api of its own
// configured with just those two (DOTGIT_GIT_UPSTREAMS). That api places the test's repositories on
// n1 and n2; the platform's api only ever places on the git-servers it is configured with (its
// own), so no other suite's repository lands on a node this test stops. Requests go to n1, which
// streams those of n2's repositories to n2.

const { N1, N2, dirs } = ownNodePair('dotgit-');

let db: Db;
let t: TenantFixture;
let principal: Principal;
let identity: string;
let n1: OwnService;
let n2: OwnService;
let ownApi: OwnService;

const via = (p: OwnService, repo: string) => `http://127.0.0.1:${p.port}/${t.tenant}/${repo}.git`;
const gitAuth = () => ['-c', `http.extraHeader=${IDENTITY_HEADER}: ${identity}`];

/** Creates a repository through the test's own api (placement among n1 and n2). */
async function createRepo(name: string) {
  const res = await fetch(`http://127.0.0.1:${ownApi.port}/api/v1/repos`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', [IDENTITY_HEADER]: identity },
    body: JSON.stringify({ owner: t.tenant, name }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function refs(url: string): Promise<string> {
  const r = await git([...gitAuth(), 'ls-remote', url]);
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: '' });
  return r.stdout;
}

beforeAll(async () => {
  const info = platformInfo();
  db = createDb(info.databaseUrl, 2);
  t = await createTenantWithAdmin();
  principal = await adminPrincipalOf(db, t);
  identity = await signIdentity(info.internalSecret, principal, 'storage-nodes');
  // The api calls either node (round robin); each forwards a creation meant for the other.
  [n1, n2, ownApi] = await startNodesWithApi({ N1, N2, dirs });
}, 180_000);

afterAll(async () => {
  killAllServices();
  await db?.end();
});

let onN1: string;
let onN2: string;

test('least-used placement: the two repositories go one to each node, the answer says which, and the bare repository is on that node only', async () => {
  onN1 = uniqueName('place');
  onN2 = uniqueName('place');
  // Both nodes empty: the tie goes to the lower id (n1); then n2 holds fewer.
  const first = await createRepo(onN1);
  expect(first).toEqual({ status: 201, body: expect.objectContaining({ name: onN1, node: N1, replicas: [] }) });
  const second = await createRepo(onN2);
  expect(second).toEqual({ status: 201, body: expect.objectContaining({ name: onN2, node: N2, replicas: [] }) });
  expect(existsSync(repoPath(path.join(dirs.n2, 'repos'), t.tenant, onN2))).toBe(true);
  expect(existsSync(repoPath(path.join(dirs.n1, 'repos'), t.tenant, onN2))).toBe(false);
  expect(existsSync(repoPath(path.join(dirs.n1, 'repos'), t.tenant, onN1))).toBe(true);
  // The repository answer through the platform's gateway names the node too.
  const got = await api('GET', `/api/v1/repos/${t.tenant}/${onN2}`, { token: t.token });
  expect(got.status).toBe(200);
  expect(got.body).toEqual(expect.objectContaining({ node: N2, replicas: [] }));
  // The platform's own repositories never go to this test's nodes (they are not in its api's list).
  const platformRepo = uniqueName('platform');
  expect((await api('POST', '/api/v1/repos', { token: t.token, body: { owner: t.tenant, name: platformRepo } })).status).toBe(201);
  const placed = await api<{ node: string }>('GET', `/api/v1/repos/${t.tenant}/${platformRepo}`, { token: t.token });
  expect(typeof placed.body.node).toBe('string');
  expect([N1, N2]).not.toContain(placed.body.node);
});

test('push and clone through n1 of a repository on n2 are forwarded: refs identical on n2, clone has the commit', async () => {
  const work = await localRepo({ 'README.md': 'on n2\n' });
  const commit = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
  const push = await git([...gitAuth(), 'push', '-q', via(n1, onN2), 'main'], work);
  expect({ code: push.code, stderr: push.stderr }).toEqual({ code: 0, stderr: '' });
  // Landed on n2's disk, not n1's.
  const onDisk = await git(['--git-dir', repoPath(path.join(dirs.n2, 'repos'), t.tenant, onN2), 'rev-parse', 'refs/heads/main']);
  expect(onDisk.stdout.trim()).toBe(commit);
  expect(await refs(via(n1, onN2))).toBe(await refs(via(n2, onN2)));
  expect(await refs(via(n1, onN2))).toContain(`${commit}\trefs/heads/main`);
  const copy = path.join(tempDir('dotgit-clone-'), 'c');
  const clone = await git([...gitAuth(), 'clone', '-q', via(n1, onN2), copy]);
  expect(clone.code).toBe(0);
  expect((await git(['rev-parse', 'HEAD'], copy)).stdout.trim()).toBe(commit);
  expect((await git(['fsck', '--strict'], copy)).code).toBe(0);
});

test('browsing a repository on n2 (ADR 0034): the api reads it through either node; n1 sends the internal reads on to n2', async () => {
  // The repository pushed above: its file through the api (which calls n1 or n2, round robin), twice.
  for (let i = 0; i < 2; i++) {
    const raw = await fetch(`http://127.0.0.1:${ownApi.port}/api/v1/repos/${t.tenant}/${onN2}/raw/README.md`, { headers: { [IDENTITY_HEADER]: identity } });
    expect({ status: raw.status, text: await raw.text() }).toEqual({ status: 200, text: 'on n2\n' });
  }
  const token = await signServiceToken(platformInfo().internalSecret, 'api');
  const tree = await fetch(`http://127.0.0.1:${n1.port}/internal/repos/tree`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', [SERVICE_HEADER]: token },
    body: JSON.stringify({ owner: t.tenant, name: onN2, path: '' }),
  });
  expect(tree.status).toBe(200);
  expect(((await tree.json()) as { entries: { path: string }[] }).entries.map((e) => e.path)).toEqual(['README.md']);
});

test("the api's creation call to n1 for a repository placed on n2 is forwarded: the bare repository appears on n2's disk", async () => {
  const token = await signServiceToken(platformInfo().internalSecret, 'api');
  const name = uniqueName('fwd');
  const res = await fetch(`http://127.0.0.1:${n1.port}/internal/repos`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', [SERVICE_HEADER]: token },
    body: JSON.stringify({ owner: t.tenant, name, node: N2 }),
  });
  expect(res.status).toBe(201);
  expect(existsSync(repoPath(path.join(dirs.n2, 'repos'), t.tenant, name))).toBe(true);
  expect(existsSync(repoPath(path.join(dirs.n1, 'repos'), t.tenant, name))).toBe(false);
});

test('a forwarded request for a repository the node does not hold is refused with 421, never sent on', async () => {
  const res = await fetch(`${via(n1, onN2)}/info/refs?service=git-upload-pack`, { headers: { [IDENTITY_HEADER]: identity, 'x-dotgit-forwarded-by': N2 } });
  expect(res.status).toBe(421);
  expect(((await res.json()) as { error: { message: string } }).error.message).toBe(`repository ${t.tenant}/${onN2} is not on node ${N1}`);
  // The same for an internal call, and for a creation meant for another node.
  const token = await signServiceToken(platformInfo().internalSecret, 'api');
  const internal = await fetch(`http://127.0.0.1:${n2.port}/internal/repos/resolve`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', [SERVICE_HEADER]: token, 'x-dotgit-forwarded-by': N1 },
    body: JSON.stringify({ owner: t.tenant, name: onN1, ref: 'main' }),
  });
  expect(internal.status).toBe(421);
});

test('bad input: creating a repository on a node that is not registered, or with a node that is not a string, is a 400', async () => {
  const token = await signServiceToken(platformInfo().internalSecret, 'api');
  const post = (body: unknown) =>
    fetch(`http://127.0.0.1:${n1.port}/internal/repos`, { method: 'POST', headers: { 'content-type': 'application/json', [SERVICE_HEADER]: token }, body: JSON.stringify(body) });
  const unknown = await post({ owner: t.tenant, name: uniqueName('x'), node: 'no-such-node' });
  expect(unknown.status).toBe(400);
  expect(((await unknown.json()) as { error: { message: string } }).error.message).toBe('storage node "no-such-node" is not registered');
  expect((await post({ owner: t.tenant, name: uniqueName('x'), node: 7 })).status).toBe(400);
  // And the node still serves.
  expect((await fetch(`http://127.0.0.1:${n1.port}/healthz`)).status).toBe(200);
});

test('n2 down: a push via n1 answers 503 with Retry-After and a message naming n2; new repositories go to n1; once n2 is back, pushes work again', async () => {
  // n1 now holds one more repository than n2, so while both are up n2 is the next choice.
  expect((await createRepo(uniqueName('more'))).body.node).toBe(N1);
  await stopService(n2);
  const message = `repository ${t.tenant}/${onN2} is on storage node ${N2}, which is down; try again later`;
  const probe = () => fetch(`${via(n1, onN2)}/info/refs?service=git-receive-pack`, { headers: { [IDENTITY_HEADER]: identity } });
  // Its heartbeat is still fresh: the refused connection says it is down.
  let res = await probe();
  expect(res.status).toBe(503);
  expect(res.headers.get('retry-after')).toBe('10');
  expect(((await res.json()) as { error: { message: string } }).error.message).toBe(message);
  const work = await localRepo({ 'README.md': 'second\n' });
  const refused = await git([...gitAuth(), 'push', '-q', '--force', via(n1, onN2), 'main'], work, {}, { timeoutMs: 60_000 });
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toMatch(/503/);
  // A stale heartbeat (older than 10 s) says so without trying the connection.
  await db.query(`UPDATE storage_nodes SET heartbeat_at = now() - interval '1 minute' WHERE id = $1`, [N2]);
  res = await probe();
  expect(res.status).toBe(503);
  expect(((await res.json()) as { error: { message: string } }).error.message).toBe(message);
  // n1's own repositories are not affected, and a node that is down is given no new repository.
  expect((await fetch(`${via(n1, onN1)}/info/refs?service=git-receive-pack`, { headers: { [IDENTITY_HEADER]: identity } })).status).toBe(200);
  expect((await createRepo(uniqueName('while-down'))).body.node).toBe(N1);

  n2 = await startNode(N2, dirs.n2, n2.port);
  expect((await createRepo(uniqueName('after'))).body.node).toBe(N2);
  const push = await git([...gitAuth(), 'push', '-q', '--force', via(n1, onN2), 'main'], work);
  expect({ code: push.code, stderr: push.stderr }).toEqual({ code: 0, stderr: '' });
  const commit = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
  expect(await refs(via(n2, onN2))).toContain(`${commit}\trefs/heads/main`);
  expect(await refs(via(n1, onN2))).toBe(await refs(via(n2, onN2)));
}, 120_000);

test('at start-up a node claims the unplaced repositories (from before nodes) that are on its disk, and only those', async () => {
  const tenantId = principal.tenantId;
  const onDisk = uniqueName('legacy');
  const elsewhere = uniqueName('legacy');
  const ids: string[] = [];
  for (const name of [onDisk, elsewhere]) {
    ids.push((await db.query(`INSERT INTO repos (tenant_id, name, visibility) VALUES ($1, $2, 'private') RETURNING id`, [tenantId, name])).rows[0].id);
  }
  try {
    expect((await git(['init', '--bare', '-q', repoPath(path.join(dirs.n1, 'repos'), t.tenant, onDisk)])).code).toBe(0);
    await stopService(n1);
    n1 = await startNode(N1, dirs.n1, n1.port);
    const nodes = (await db.query(`SELECT name, node_id FROM repos WHERE id = ANY($1::bigint[]) ORDER BY name`, [ids])).rows;
    expect(Object.fromEntries(nodes.map((r) => [r.name, r.node_id]))).toEqual({ [onDisk]: N1, [elsewhere]: null });
    const answer = await fetch(`http://127.0.0.1:${ownApi.port}/api/v1/repos/${t.tenant}/${onDisk}`, { headers: { [IDENTITY_HEADER]: identity } });
    expect(await answer.json()).toEqual(expect.objectContaining({ node: N1, replicas: [] }));
  } finally {
    await db.query(`DELETE FROM repos WHERE id = ANY($1::bigint[])`, [ids]);
  }
}, 120_000);

test("a node's push reconciliation judges only pushes to its own repositories: another node's are not on its disk", async () => {
  const repoId = Number((await db.query(`SELECT r.id FROM repos r WHERE r.tenant_id = $1 AND r.name = $2`, [principal.tenantId, onN2])).rows[0].id);
  const claims = { tenantId: principal.tenantId, repoId, actor: t.username, pushId: uniqueName('unfinished') };
  // A push journaled on n2 whose ref never moved (n2 died before git applied it).
  await journalPrepared(db, claims, [{ ref: 'refs/heads/unfinished', oldSha: '0'.repeat(40), newSha: 'f'.repeat(40) }]);
  const reconciler = (nodeId: string, dir: string) => new PushReconciler({ db, reposDir: path.join(dir, 'repos'), nodeId, log: pino({ level: 'silent' }), replicate: false });
  const status = async () => (await db.query(`SELECT status FROM push_journal WHERE push_id = $1`, [claims.pushId])).rows.map((r) => r.status);
  // n1 leaves it alone (on n1's disk the repository is absent, so the ref would look unmoved) …
  expect(await reconciler(N1, dirs.n1).reconcile({ graceMs: 0, repoId })).toEqual({ recovered: 0, dropped: 0 });
  expect(await status()).toEqual(['prepared']);
  // … n2, which holds the repository, finds the ref did not move and drops it.
  expect(await reconciler(N2, dirs.n2).reconcile({ graceMs: 0, repoId })).toEqual({ recovered: 0, dropped: 1 });
  expect(await status()).toEqual(['aborted']);
});
