import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { createDb, type Db } from '../../core/db';
import { repoPath } from '../../core/git';
import { IDENTITY_HEADER, SERVICE_HEADER, signIdentity, signServiceToken } from '../../core/internal-identity';
import type { Principal } from '../../core/principal';
import { MOVE_SERVICE, moveWorkflowId } from '../../core/repo-moves';
import { platformInfo } from '../harness/platform-info';
import { createTenantWithAdmin, uniqueName, type TenantFixture } from '../helpers/api-client';
import { killAllServices, ownNodePair, startNodesWithApi, type OwnService } from '../helpers/own-services';
import { git, localRepo, tempDir, writeFiles } from '../helpers/git';

// Moving a repository between storage nodes (issue 11 item 4, ADR 0014, workflows/move.ts): two
// git-servers of this test's own (n1, n2) and an api of its own configured with just those (as in
// storage-nodes.test.ts), on the shared platform's Postgres, Redis and Temporal; the move workflow
// runs on the platform's worker. A pusher pushes all along while a repository moves from n1 to n2.

const { N1, N2, dirs } = ownNodePair('dotgit-move-');
const suffix = randomBytes(3).toString('hex');
const GRACE_SECONDS = 2;

let db: Db;
let temporal: Client;
let t: TenantFixture;
let member: Principal;
let admin: Principal;
let n1: OwnService;
let n2: OwnService;
let ownApi: OwnService;

const via = (p: OwnService, repo: string) => `http://127.0.0.1:${p.port}/${t.tenant}/${repo}.git`;
const onDisk = (dir: string, repo: string) => repoPath(path.join(dir, 'repos'), t.tenant, repo);
/** A fresh identity per call: the pusher runs longer than one identity lives. */
const gitAuth = async (p: Principal = member) => ['-c', `http.extraHeader=${IDENTITY_HEADER}: ${await signIdentity(platformInfo().internalSecret, p, 'repo-move')}`];

async function callApi(method: string, urlPath: string, p: Principal, body?: unknown) {
  const res = await fetch(`http://127.0.0.1:${ownApi.port}${urlPath}`, {
    method,
    headers: { 'content-type': 'application/json', [IDENTITY_HEADER]: await signIdentity(platformInfo().internalSecret, p, 'repo-move') },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

const moveRepo = (repo: string, node: unknown, p: Principal = admin) => callApi('POST', `/api/v1/repos/${t.tenant}/${repo}/move`, p, { node });

async function principalOf(where: string, arg: unknown, tenantName: string): Promise<Principal> {
  const u = (await db.query(`SELECT id, username, tenant_id, role, platform_admin FROM users WHERE ${where} ORDER BY id LIMIT 1`, [arg])).rows[0];
  return { userId: Number(u.id), username: u.username, tenantId: Number(u.tenant_id), tenantName, role: u.role, platformAdmin: u.platform_admin, scopes: ['read', 'write', 'admin'], tokenId: 0 };
}

/** A repository on n1 (both nodes hold equally many: the tie goes to n1) with a few commits. */
async function repoOnN1(prefix: string): Promise<{ name: string; work: string }> {
  // Least-used placement: when n1 holds more, the next goes to n2 (and stays there as ballast).
  let name: string;
  for (;;) {
    name = uniqueName(prefix);
    const created = await callApi('POST', '/api/v1/repos', member, { owner: t.tenant, name });
    expect(created.status).toBe(201);
    if (created.body.node === N1) break;
  }
  const work = await localRepo({ 'README.md': 'one\n' });
  for (const n of ['two', 'three']) {
    await writeFiles(work, { 'README.md': `${n}\n` });
    await git(['commit', '-qam', n], work);
  }
  const push = await git([...(await gitAuth()), 'push', '-q', via(n1, name), 'main'], work);
  expect({ code: push.code, stderr: push.stderr }).toEqual({ code: 0, stderr: '' });
  return { name, work };
}

async function refsOf(gitDir: string): Promise<Record<string, string>> {
  const r = await git(['--git-dir', gitDir, 'for-each-ref', '--format=%(refname) %(objectname)']);
  return Object.fromEntries(r.stdout.trim().split('\n').filter(Boolean).map((l) => l.split(' ')));
}

beforeAll(async () => {
  const info = platformInfo();
  db = createDb(info.databaseUrl, 2);
  temporal = new Client({ connection: await Connection.connect({ address: info.temporalAddress }), namespace: info.namespace });
  t = await createTenantWithAdmin();
  const tenantId = Number((await db.query(`SELECT id FROM tenants WHERE name = $1`, [t.tenant])).rows[0].id);
  member = await principalOf('username = $1', t.username, t.tenant);
  const platformAdmin = await principalOf('platform_admin = $1', true, '');
  admin = { ...platformAdmin, tenantName: (await db.query(`SELECT name FROM tenants WHERE id = $1`, [platformAdmin.tenantId])).rows[0].name };
  expect(member.tenantId).toBe(tenantId);
  [n1, n2, ownApi] = await startNodesWithApi({ N1, N2, dirs }, { DOTGIT_MOVE_GRACE_SECONDS: String(GRACE_SECONDS) });
}, 180_000);

afterAll(async () => {
  killAllServices();
  await temporal?.connection.close();
  await db?.end();
});

test('a repository moves from n1 to n2 while a pusher pushes all along: no push lost, refs equal, fsck clean, clones through n1 work, the old copy goes after the grace period', async () => {
  const { name, work } = await repoOnN1('moving');
  // The pusher: a new commit on main and a branch of its own per push, retried while refused (503).
  const succeeded = new Map<string, string>();
  const refusals: string[] = [];
  let stop = false;
  let moved = false;
  let pushesAfterMove = 0;
  const pusher = (async () => {
    for (let i = 1; !stop || pushesAfterMove < 2; i++) {
      await writeFiles(work, { [`file-${i}.txt`]: `push ${i}\n` });
      await git(['add', '-A'], work);
      await git(['commit', '-qm', `push ${i}`], work);
      const sha = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
      for (let attempt = 1; ; attempt++) {
        const r = await git([...(await gitAuth()), 'push', '-q', via(n1, name), 'HEAD:refs/heads/main', `HEAD:refs/heads/push-${i}`], work, {}, { timeoutMs: 60_000 });
        if (r.code === 0) break;
        if (!/503/.test(r.stderr) || attempt > 200) throw new Error(`push ${i} failed: ${r.stderr}`);
        refusals.push(r.stderr);
        await new Promise((res) => setTimeout(res, 100));
      }
      succeeded.set(`refs/heads/push-${i}`, sha);
      if (moved) pushesAfterMove++;
    }
  })();
  while (succeeded.size < 2) await new Promise((r) => setTimeout(r, 50));

  const answer = await moveRepo(name, N2);
  expect(answer).toEqual({ status: 202, body: { id: moveWorkflowId(t.tenant, name), from: N1, to: N2 } });
  const result = await temporal.workflow.getHandle(answer.body.id).result();
  moved = true;
  stop = true;
  await pusher;
  expect(result).toEqual({ from: N1, to: N2, refs: expect.any(Number), sourceRemoved: true });
  // The move is in the audit log's chain, by the platform admin who asked (issue 12 item 5).
  const audited = await db.query(`SELECT actor, detail, seq FROM audit_log WHERE action = 'repo.move' AND target = $1`, [`${t.tenant}/${name}`]);
  expect(audited.rows).toEqual([{ actor: admin.username, detail: { from: N1, to: N2 }, seq: expect.any(String) }]);

  // The repository answer names n2; every push the pusher saw succeed is on n2, and main is its last.
  const repo = await callApi('GET', `/api/v1/repos/${t.tenant}/${name}`, member);
  expect(repo.body.node).toBe(N2);
  const onN2 = await refsOf(onDisk(dirs.n2, name));
  const expected = Object.fromEntries([...succeeded]);
  expect(Object.fromEntries(Object.entries(onN2).filter(([ref]) => ref.startsWith('refs/heads/push-')))).toEqual(expected);
  expect(onN2['refs/heads/main']).toBe((await git(['rev-parse', 'HEAD'], work)).stdout.trim());
  const lsRemote = async (p: OwnService) => (await git([...(await gitAuth()), 'ls-remote', via(p, name)])).stdout;
  expect(await lsRemote(n1)).toBe(await lsRemote(n2));
  const fsck = await git(['--git-dir', onDisk(dirs.n2, name), 'fsck', '--full', '--strict']);
  expect({ code: fsck.code, stderr: fsck.stderr.replace(/^Checking.*\n?/gm, '') }).toEqual({ code: 0, stderr: '' });
  // Refusals during the fence said why (the pusher may or may not have hit the fence's moment).
  for (const r of refusals) expect(r).toMatch(/503/);

  // A clone through n1 is forwarded to n2 and has everything; n1's copy is gone after the grace period.
  const copy = path.join(tempDir('dotgit-move-clone-'), 'c');
  const clone = await git([...(await gitAuth()), 'clone', '-q', via(n1, name), copy]);
  expect({ code: clone.code, stderr: clone.stderr }).toEqual({ code: 0, stderr: '' });
  expect((await git(['rev-parse', 'HEAD'], copy)).stdout.trim()).toBe(onN2['refs/heads/main']);
  expect(existsSync(onDisk(dirs.n1, name))).toBe(false);
  expect((await db.query(`SELECT moving_to FROM repos WHERE tenant_id = $1 AND name = $2`, [member.tenantId, name])).rows[0].moving_to).toBeNull();
}, 180_000);

test('while a move fences a repository, a push answers 503 with Retry-After and says so; lifted, pushes work again', async () => {
  const { name, work } = await repoOnN1('fenced');
  await db.query(`UPDATE repos SET moving_to = $3 WHERE tenant_id = $1 AND name = $2`, [member.tenantId, name, N2]);
  try {
    const probe = await fetch(`${via(n1, name)}/info/refs?service=git-receive-pack`, { headers: { [IDENTITY_HEADER]: await signIdentity(platformInfo().internalSecret, member, 'probe') } });
    expect(probe.status).toBe(503);
    expect(probe.headers.get('retry-after')).toBe('2');
    expect(((await probe.json()) as { error: { message: string } }).error.message).toBe(`repository ${t.tenant}/${name} is being moved to storage node ${N2}; try again in a moment`);
    await writeFiles(work, { 'x.txt': 'x\n' });
    await git(['add', '-A'], work);
    await git(['commit', '-qm', 'x'], work);
    const refused = await git([...(await gitAuth()), 'push', '-q', via(n1, name), 'main'], work);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/503/);
    // Reads go on.
    expect((await git([...(await gitAuth()), 'ls-remote', via(n1, name)])).code).toBe(0);
  } finally {
    await db.query(`UPDATE repos SET moving_to = NULL WHERE tenant_id = $1 AND name = $2`, [member.tenantId, name]);
  }
  const push = await git([...(await gitAuth()), 'push', '-q', via(n1, name), 'main'], work);
  expect({ code: push.code, stderr: push.stderr }).toEqual({ code: 0, stderr: '' });
});

test('a move that fails after the fence (the catch-up) lifts the fence and leaves the repository where it was, saying why', async () => {
  const { name, work } = await repoOnN1('failing');
  const before = await refsOf(onDisk(dirs.n1, name));
  // A target node of the test's own: its copy succeeds, its catch-up fails (while the fence holds).
  const ghost = `ghost-${suffix}`;
  const calls: string[] = [];
  const fencedDuringCatchUp: (string | null)[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', async () => {
      const route = req.url ?? '';
      calls.push(route);
      if (route === '/internal/repos/move-in' && calls.filter((c) => c === route).length > 1) {
        fencedDuringCatchUp.push((await db.query(`SELECT moving_to FROM repos WHERE tenant_id = $1 AND name = $2`, [member.tenantId, name])).rows[0].moving_to);
        res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'disk full' } }));
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ refs: {}, dropped: true }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  await db.query(`INSERT INTO storage_nodes (id, url, heartbeat_at, started_at) VALUES ($1, $2, now(), now())`, [ghost, `http://127.0.0.1:${port}`]);
  try {
    const answer = await moveRepo(name, ghost);
    expect(answer.status).toBe(202);
    const failure = await temporal.workflow.getHandle(answer.body.id).result().then(() => undefined, (err: Error & { cause?: Error }) => err.cause?.message);
    expect(failure).toBe(`moving ${t.tenant}/${name} from ${N1} to ${ghost} failed: storage node ${ghost} answered move-in with 500: disk full`);
    // The catch-up ran fenced (three tries), then the fence was lifted and the target's copy dropped.
    expect(fencedDuringCatchUp).toEqual([ghost, ghost, ghost]);
    expect(calls[calls.length - 1]).toBe('/internal/repos/move-drop');
    const row = (await db.query(`SELECT node_id, moving_to FROM repos WHERE tenant_id = $1 AND name = $2`, [member.tenantId, name])).rows[0];
    expect(row).toEqual({ node_id: N1, moving_to: null });
    expect(await refsOf(onDisk(dirs.n1, name))).toEqual(before);
    await writeFiles(work, { 'after.txt': 'after\n' });
    await git(['add', '-A'], work);
    await git(['commit', '-qm', 'after'], work);
    const push = await git([...(await gitAuth()), 'push', '-q', via(n1, name), 'main'], work);
    expect({ code: push.code, stderr: push.stderr }).toEqual({ code: 0, stderr: '' });
  } finally {
    server.close();
    await db.query(`DELETE FROM storage_nodes WHERE id = $1`, [ghost]);
  }
}, 120_000);

test('who may move: a tenant admin is refused (403), another tenant learns nothing (404); bad bodies and nodes are 4xx with a message; a second move while one runs is 409', async () => {
  const { name } = await repoOnN1('rules');
  // A tenant admin (not a platform admin) who can read the repository: 403.
  const tenantAdmin = await moveRepo(name, N2, member);
  expect(tenantAdmin).toEqual({ status: 403, body: { error: expect.objectContaining({ message: 'only a platform admin may do this' }) } });
  // Someone of another tenant: as if there were no such repository.
  const other = await createTenantWithAdmin();
  const stranger = await principalOf('username = $1', other.username, other.tenant);
  expect((await moveRepo(name, N2, stranger)).status).toBe(404);
  // Bad input.
  const unknown = await moveRepo(name, 'no-such-node');
  expect(unknown).toEqual({ status: 400, body: { error: expect.objectContaining({ message: 'storage node "no-such-node" is not registered' }) } });
  expect((await moveRepo(name, 7)).status).toBe(400);
  const extra = await callApi('POST', `/api/v1/repos/${t.tenant}/${name}/move`, admin, { node: N2, force: true });
  expect(extra.status).toBe(400);
  const same = await moveRepo(name, N1);
  expect(same).toEqual({ status: 409, body: { error: expect.objectContaining({ message: `repository ${t.tenant}/${name} is already on storage node ${N1}` }) } });
  const down = `down-${suffix}`;
  await db.query(`INSERT INTO storage_nodes (id, url, heartbeat_at, started_at) VALUES ($1, 'http://127.0.0.1:9', now() - interval '1 minute', now())`, [down]);
  try {
    const toDown = await moveRepo(name, down);
    expect(toDown).toEqual({ status: 400, body: { error: expect.objectContaining({ message: `storage node ${down} is down; a repository moves only to a node that is up` }) } });
  } finally {
    await db.query(`DELETE FROM storage_nodes WHERE id = $1`, [down]);
  }
  // One move at a time: the second, while the first runs (its grace period alone lasts seconds), is refused.
  // (The target is one of its replica nodes: after the move it holds it, and is a replica no longer.)
  await db.query(`UPDATE repos SET replica_nodes = $3 WHERE tenant_id = $1 AND name = $2`, [member.tenantId, name, [N2]]);
  const first = await moveRepo(name, N2);
  expect(first.status).toBe(202);
  const second = await moveRepo(name, N2);
  expect(second).toEqual({ status: 409, body: { error: expect.objectContaining({ message: `a move of ${t.tenant}/${name} is already running (${moveWorkflowId(t.tenant, name)})` }) } });
  await temporal.workflow.getHandle(first.body.id).result();
  expect((await callApi('GET', `/api/v1/repos/${t.tenant}/${name}`, member)).body.node).toBe(N2);
  expect((await db.query(`SELECT replica_nodes FROM repos WHERE tenant_id = $1 AND name = $2`, [member.tenantId, name])).rows[0].replica_nodes).toEqual([]);
}, 120_000);

test('a node drops only a copy that is neither the repository nor a replica of it', async () => {
  const { name } = await repoOnN1('drop');
  const drop = async (p: OwnService) => {
    const res = await fetch(`http://127.0.0.1:${p.port}/internal/repos/move-drop`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', [SERVICE_HEADER]: await signServiceToken(platformInfo().internalSecret, MOVE_SERVICE) },
      body: JSON.stringify({ owner: t.tenant, name }),
    });
    return { status: res.status, message: ((await res.json()) as { error?: { message: string } }).error?.message };
  };
  // The holder keeps its copy.
  expect(await drop(n1)).toEqual({ status: 409, message: `repository ${t.tenant}/${name} is held by storage node ${N1} (or about to be); its copy stays` });
  expect(existsSync(onDisk(dirs.n1, name))).toBe(true);
  // A replica node keeps its copy.
  const replica = onDisk(dirs.n2, name);
  expect((await git(['init', '--bare', '-q', replica])).code).toBe(0);
  await db.query(`UPDATE repos SET replica_nodes = $3 WHERE tenant_id = $1 AND name = $2`, [member.tenantId, name, [N2]]);
  expect(await drop(n2)).toEqual({ status: 409, message: `storage node ${N2} is a replica node of ${t.tenant}/${name}; its copy stays` });
  expect(existsSync(replica)).toBe(true);
  // Any other copy goes; a token that is not a move's is refused.
  await db.query(`UPDATE repos SET replica_nodes = '{}' WHERE tenant_id = $1 AND name = $2`, [member.tenantId, name]);
  expect(await drop(n2)).toEqual({ status: 200, message: undefined });
  expect(existsSync(replica)).toBe(false);
  const other = await fetch(`http://127.0.0.1:${n1.port}/internal/repos/move-drop`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', [SERVICE_HEADER]: await signServiceToken(platformInfo().internalSecret, 'api') },
    body: JSON.stringify({ owner: t.tenant, name }),
  });
  expect(other.status).toBe(403);
});
