import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, promises as fs } from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { createDb, type Db } from '../../core/db';
import { signIdentity } from '../../core/internal-identity';
import type { Principal } from '../../core/principal';
import { repoPath } from '../../core/git';
import { freePort } from '../../infra/provision/free-port';
import { journalPrepared, postReceiveGuard, PushReconciler } from '../../git-server/push-journal';
import { recordPush } from '../../git-server/push-recorder';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, uniqueName, waitForRun, type TenantFixture } from '../helpers/api-client';
import { git, localRepo, tempDir } from '../helpers/git';
import { adminPrincipalOf } from '../helpers/principal';

// No push loses its pipeline: the ref updates are journaled before git makes them visible, and a
// git-server that dies between the ref update and the post-receive work finds the journal at its
// next start and creates the push's runs, exactly once. The crash instant is made exact with the
// DOTGIT_TEST_STALL_AFTER_REF_UPDATE test hook on a git-server process of this test's own.

const ROOT = path.resolve(__dirname, '..', '..');
const PIPELINE = 'jobs:\n  build:\n    steps:\n      - run: echo durable\n';

let db: Db;
let t: TenantFixture;
let principal: Principal;
const started: ChildProcess[] = [];

beforeAll(async () => {
  db = createDb(platformInfo().databaseUrl, 2);
  t = await createTenantWithAdmin();
  principal = await adminPrincipalOf(db, t);
});

afterAll(async () => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) killGroup(child, 'SIGKILL');
  await db?.end();
});

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal); // the git-server and every git / hook process it started
  } catch {
    // already gone
  }
}

/** A git-server process of this test's own over the platform's Postgres, Redis, Temporal and repositories. */
async function startGitServer(port: number, extraEnv: Record<string, string>, logFile: string): Promise<ChildProcess> {
  const info = platformInfo();
  const out = openSync(logFile, 'a');
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'git-server', 'main.ts')], {
    cwd: ROOT,
    detached: true, // its own process group, so kill -9 reaches its git and hook children too
    stdio: ['ignore', out, out],
    env: {
      ...process.env,
      DOTGIT_DATA_DIR: info.dataDir,
      DATABASE_URL: info.databaseUrl,
      REDIS_URL: info.redisUrl,
      TEMPORAL_ADDRESS: info.temporalAddress,
      TEMPORAL_NAMESPACE: info.namespace,
      DOTGIT_INTERNAL_SECRET: info.internalSecret,
      DOTGIT_GIT_PORT: String(port),
      DOTGIT_PUBLIC_URL: info.gatewayUrl,
      LOG_LEVEL: 'info',
      ...extraEnv,
    },
  });
  started.push(child);
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
    if (res?.ok) return child;
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`own git-server did not start: ${await fs.readFile(logFile, 'utf8').catch(() => '')}`);
}

async function runsOf(repo: string, commit: string): Promise<{ id: string; status: string }[]> {
  const r = await api<{ runs: { id: string; status: string }[] }>('GET', `/api/v1/repos/${t.tenant}/${repo}/runs?commit=${commit}`, { token: t.token });
  expect(r.status).toBe(200);
  return r.body.runs;
}

test('kill -9 of the git-server between the ref update and the post-receive work: the push gets exactly one run, which succeeds', async () => {
  const repo = uniqueName('durable');
  expect((await api('POST', '/api/v1/repos', { token: t.token, body: { owner: t.tenant, name: repo } })).status).toBe(201);
  const work = await localRepo({ '.dotgit/pipeline.yml': PIPELINE });
  const commit = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
  const port = await freePort();
  const stallFile = path.join(tempDir('dotgit-stall-'), 'stalled');
  const logFile = path.join(platformInfo().dataDir, 'logs', `git-server-durability-${port}.log`);
  const first = await startGitServer(port, { DOTGIT_TEST_STALL_AFTER_REF_UPDATE: stallFile }, logFile);

  const header = ['-c', `http.extraHeader=x-dotgit-identity: ${await signIdentity(platformInfo().internalSecret, principal, 'durability')}`];
  const push = git([...header, 'push', `http://127.0.0.1:${port}/${t.tenant}/${repo}.git`, 'main'], work);
  const deadline = Date.now() + 60_000;
  while (!existsSync(stallFile) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  expect(existsSync(stallFile)).toBe(true);
  const said = await fs.readFile(stallFile, 'utf8');
  expect(said).toContain(`${t.tenant}/${repo}`);
  expect(said).toContain(commit);
  // The instant the test hook marks: the ref is on disk, no run exists yet.
  const head = await git(['--git-dir', repoPath(path.join(platformInfo().dataDir, 'repos'), t.tenant, repo), 'rev-parse', 'refs/heads/main']);
  expect(head.stdout.trim()).toBe(commit);
  expect(await runsOf(repo, commit)).toEqual([]);

  killGroup(first, 'SIGKILL');
  const killedAt = Date.now();
  await new Promise((r) => first.once('exit', r));
  expect((await push).code).not.toBe(0); // the client saw its server die

  // Started again without the test hook: the start-up reconciliation finds the journaled push.
  const second = await startGitServer(port, {}, logFile);
  const upAfterMs = Date.now() - killedAt;
  let runs: { id: string; status: string }[] = [];
  while (runs.length === 0 && Date.now() - killedAt < 60_000) {
    runs = await runsOf(repo, commit);
    if (runs.length === 0) await new Promise((r) => setTimeout(r, 100));
  }
  const recoveredAfterMs = Date.now() - killedAt;
  expect(runs).toHaveLength(1);
  console.log(`git-server kill -9 between ref update and hook: up again after ${upAfterMs} ms, run created ${recoveredAfterMs} ms after the kill`);
  expect((await waitForRun(runs[0].id, t.token)).status).toBe('success');
  const recoveredRun = await api<{ id: string; finishedAt: string }>('GET', `/api/v1/runs/${encodeURIComponent(runs[0].id)}`, { token: t.token });
  console.log(`  …and the recovered run finished ${new Date(recoveredRun.body.finishedAt).getTime() - killedAt} ms after the kill`);

  // A second reconciliation pass (no grace: every unfinished row of this repository) creates nothing.
  const repoId = Number((await db.query('SELECT id FROM repos WHERE name = $1', [repo])).rows[0].id);
  const reconciler = new PushReconciler({ db, reposDir: path.join(platformInfo().dataDir, 'repos'), log: pino({ level: 'silent' }), replicate: false });
  expect(await reconciler.reconcile({ graceMs: 0, repoId })).toEqual({ recovered: 0, dropped: 0 });
  expect(await runsOf(repo, commit)).toHaveLength(1);
  const journal = await db.query(`SELECT status FROM push_journal WHERE repo_id = $1`, [repoId]);
  expect(journal.rows.map((r) => r.status)).toEqual(['done']);

  // The restarted server takes pushes as usual (journal row, post-receive, one run).
  await fs.writeFile(path.join(work, 'b.txt'), 'b\n');
  await git(['add', '-A'], work);
  await git(['commit', '-qm', 'second'], work);
  const again = await git([...header, 'push', `http://127.0.0.1:${port}/${t.tenant}/${repo}.git`, 'main'], work);
  expect(again.code).toBe(0);
  const next = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
  expect(await runsOf(repo, next)).toHaveLength(1);
  killGroup(second, 'SIGTERM');
}, 240_000);

test('a journaled update whose ref never moved is dropped; one that landed gets its runs once (none with ci.skip), also when its post-receive comes late', async () => {
  const repo = uniqueName('journal');
  expect((await api('POST', '/api/v1/repos', { token: t.token, body: { owner: t.tenant, name: repo } })).status).toBe(201);
  const work = await localRepo({ '.dotgit/pipeline.yml': PIPELINE });
  const commit = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
  const row = (await db.query('SELECT id, tenant_id FROM repos WHERE name = $1', [repo])).rows[0];
  const repoId = Number(row.id);
  const claims = { tenantId: Number(row.tenant_id), tenant: t.tenant, repoId, repo, actor: t.username };
  const reposDir = path.join(platformInfo().dataDir, 'repos');
  const gitDir = repoPath(reposDir, t.tenant, repo);
  const zero = '0'.repeat(40);
  // A transaction that was prepared and then aborted (or died before the ref moved): refs/heads/main does not exist.
  await journalPrepared(db, { ...claims, pushId: 'never-applied' }, [{ ref: 'refs/heads/main', oldSha: zero, newSha: commit }]);
  // A push that landed (the objects and the ref are in the repository) but whose post-receive never ran.
  expect((await git(['push', '-q', gitDir, 'main:refs/heads/landed'], work)).code).toBe(0);
  await journalPrepared(db, { ...claims, pushId: 'landed' }, [{ ref: 'refs/heads/landed', oldSha: zero, newSha: commit }]);
  // One that landed with `-o ci.skip`: recovered (marked done) without a run, as its post-receive would.
  expect((await git(['push', '-q', gitDir, 'main:refs/heads/skipped'], work)).code).toBe(0);
  await journalPrepared(db, { ...claims, pushId: 'skipped' }, [{ ref: 'refs/heads/skipped', oldSha: zero, newSha: commit }], { pushOptions: ['ci.skip'] });
  const reconciler = new PushReconciler({ db, reposDir, log: pino({ level: 'silent' }), replicate: false });
  // Young rows of other instances are left alone: their push may still be under way.
  expect(await reconciler.reconcile({ graceMs: 60_000, repoId })).toEqual({ recovered: 0, dropped: 0 });
  const passes = await Promise.all([reconciler.reconcile({ graceMs: 0, repoId }), reconciler.reconcile({ graceMs: 0, repoId })]);
  expect(passes.reduce((n, p) => n + p.recovered, 0)).toBe(2);
  expect(passes.reduce((n, p) => n + p.dropped, 0)).toBe(1);
  expect(await reconciler.reconcile({ graceMs: 0, repoId })).toEqual({ recovered: 0, dropped: 0 });
  const runs = await runsOf(repo, commit);
  expect(runs).toHaveLength(1);
  const states = await db.query(`SELECT push_id, status FROM push_journal WHERE repo_id = $1 ORDER BY push_id`, [repoId]);
  expect(states.rows).toEqual([
    { push_id: 'landed', status: 'done' },
    { push_id: 'never-applied', status: 'aborted' },
    { push_id: 'skipped', status: 'done' },
  ]);
  // The push's own post-receive recording after the reconciliation (a git that outlived its
  // git-server) is told the run the reconciliation made (its hook names it) and makes none.
  const late = await recordPush(db, { ...claims, gitDir }, [{ ref: 'refs/heads/landed', oldSha: zero, newSha: commit }], { journal: postReceiveGuard(claims.tenantId, 'landed') });
  expect(late).toMatchObject({ runs: [], recordedEarlier: [runs[0].id] });
  expect(await runsOf(repo, commit)).toHaveLength(1);
  expect((await waitForRun(runs[0].id, t.token)).status).toBe('success');
}, 180_000);
