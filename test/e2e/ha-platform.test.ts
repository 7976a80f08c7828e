import { execFileSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Connection, Client } from '@temporalio/client';
import { unmountAllUnder } from '../../activities/workspace';
import { RunscDriver } from '../../activities/sandbox/runsc-driver';
import { repoPath } from '../../core/git';
import { LIMITS_OUT_OF_THE_WAY, ownPlatformEnv } from '../../infra/own-platform-env';
import { startPlatform, ROOT, type Platform } from '../../infra/platform';
import { git, localRepo, runIdsFrom, writeFiles } from '../helpers/git';
import { cloneUrlVia } from '../helpers/own-gateway';

// Issue 13's drills on the whole platform (ADR 0027): a platform of the suite's own in HA mode
// (startPlatform({ ha: true }): Postgres under Patroni + etcd, Redis under Sentinel), its own
// traffic through its gateway — repositories created over the API, pushes of a repository with a
// one-step pipeline, the runs those pushes start — while the Postgres primary is killed -9, then a
// planned switchover through the admin API. test/integration/postgres-ha.test.ts drills the
// cluster itself with a small app of its own; this one shows the services follow it.

jest.setTimeout(600_000);

const PIPELINE = 'jobs:\n  build:\n    steps:\n      - run: echo built\n';
const TERMINAL = ['success', 'failure', 'cancelled'];

let platform: Platform;
let dataDir: string;
let temporal: Connection;
let token: string;
let tenant: string;

interface Answer {
  status: number;
  retryAfter: string | null;
  text: string;
  sentAt: number;
  doneAt: number;
}

async function call(method: string, p: string, o: { body?: unknown; as?: string } = {}): Promise<Answer & { body: any }> {
  const sentAt = Date.now();
  const res = await fetch(`${platform.gatewayUrl}${p}`, {
    method,
    headers: { authorization: `Bearer ${o.as ?? token}`, ...(o.body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: o.body === undefined ? undefined : JSON.stringify(o.body),
  });
  const text = await res.text();
  let body: any;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  return { status: res.status, retryAfter: res.headers.get('retry-after'), text, body, sentAt, doneAt: Date.now() };
}

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  dataDir = path.join(ROOT, '.test-data', `ha-platform-${process.pid}`);
  await fs.rm(dataDir, { recursive: true, force: true });
  await fs.mkdir(dataDir, { recursive: true });
  await fs.chmod(dataDir, 0o755); // user postgres runs the Patroni members in here
  platform = await startPlatform({
    env: ownPlatformEnv(dataDir, { DOTGIT_RATE_LIMITS: LIMITS_OUT_OF_THE_WAY }),
    log: { info: () => {}, debug: () => {}, warn: console.warn },
    ephemeral: true,
    ha: true,
  });
  temporal = await Connection.connect({ address: platform.temporalAddress });
  tenant = `ha-${process.pid}`;
  const admin = platform.adminToken;
  expect((await call('POST', '/api/v1/tenants', { as: admin, body: { name: tenant } })).status).toBe(201);
  const username = `ha-admin-${process.pid}`;
  expect((await call('POST', `/api/v1/tenants/${tenant}/users`, { as: admin, body: { username, role: 'admin' } })).status).toBe(201);
  const tok = await call('POST', '/api/v1/tokens', { as: admin, body: { username, scopes: ['read', 'write', 'admin'] } });
  expect(tok.status).toBe(201);
  token = tok.body.token;
}, 600_000);

afterAll(async () => {
  await temporal?.close();
  await platform?.stop();
  if (dataDir) {
    await RunscDriver.releaseState(path.join(dataDir, 'sandbox')).catch(() => undefined);
    // A job's tmpfs workspace may still be mounted just after the worker stopped.
    await unmountAllUnder(dataDir);
    await fs.rm(dataDir, { recursive: true, force: true });
  }
}, 120_000);

/**
 * The load: one client creating repositories over the API (row after row; with `resend` it honours
 * 503 + Retry-After as clients are told to and sends the same request again), one pushing commits
 * of a repository whose pipeline has one step (each accepted push starts a run).
 */
function startLoad(o: { resend: boolean; pushRepo: string; work: string }) {
  const writes: Array<Answer & { name: string }> = [];
  const pushes: Array<{ sha: string; code: number; runs: string[]; stderr: string; sentAt: number; doneAt: number }> = [];
  let stopped = false;
  let n = 0;
  const writer = (async () => {
    while (!stopped) {
      const name = `w-${Date.now().toString(36)}-${++n}`;
      for (let attempt = 1; ; attempt++) {
        const a = await call('POST', '/api/v1/repos', { body: { owner: tenant, name, visibility: 'private' } });
        writes.push({ ...a, name });
        if (a.status !== 503 || !o.resend || attempt >= 10) break;
        await new Promise((r) => setTimeout(r, Number(a.retryAfter ?? 1) * 1000));
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const url = cloneUrlVia(platform.gatewayUrl, tenant, o.pushRepo, token);
  let m = 0;
  const pusher = (async () => {
    while (!stopped) {
      await writeFiles(o.work, { 'n.txt': `${++m}\n` });
      await git(['commit', '-qam', `push ${m}`], o.work);
      const sha = (await git(['rev-parse', 'HEAD'], o.work)).stdout.trim();
      for (let attempt = 1; ; attempt++) {
        const sentAt = Date.now();
        // The trace names each HTTP answer's status and headers (no pack data): a refused push must
        // have been told 503 with Retry-After, which git's own message does not show.
        const r = await git(['push', url, 'main'], o.work, { GIT_TRACE_CURL: '1' });
        pushes.push({ sha, code: r.code, runs: runIdsFrom(r.stderr), stderr: r.stderr, sentAt, doneAt: Date.now() });
        if (r.code === 0 || !o.resend || attempt >= 10) break;
        await new Promise((r) => setTimeout(r, 2000));
      }
    }
  })();
  return {
    writes,
    pushes,
    acked: () => writes.filter((w) => w.status === 201),
    accepted: () => pushes.filter((p) => p.code === 0),
    stop: async () => {
      stopped = true;
      await Promise.all([writer, pusher]);
    },
  };
}

async function pushRepository(): Promise<{ repo: string; work: string }> {
  const repo = `pushed-${Date.now().toString(36)}`;
  expect((await call('POST', '/api/v1/repos', { body: { owner: tenant, name: repo, visibility: 'private' } })).status).toBe(201);
  const work = await localRepo({ '.dotgit/pipeline.yml': PIPELINE, 'n.txt': '0\n' });
  return { repo, work };
}

/** What the platform acknowledged is there: each created repository answers, the branch holds the last accepted push, each accepted push's run ends, once. */
async function expectAcknowledgedPresent(load: ReturnType<typeof startLoad>, repo: string, work: string): Promise<string[]> {
  const missing: string[] = [];
  for (const w of load.acked()) if ((await call('GET', `/api/v1/repos/${tenant}/${w.name}`)).status !== 200) missing.push(w.name);
  expect(missing).toEqual([]);
  const accepted = load.accepted();
  const tip = await git(['ls-remote', cloneUrlVia(platform.gatewayUrl, tenant, repo, token), 'refs/heads/main'], work);
  const remoteTip = tip.stdout.split('\t')[0];
  for (const p of accepted) expect((await git(['merge-base', '--is-ancestor', p.sha, remoteTip], work)).code).toBe(0);
  // One run per accepted push, none started twice. A push whose post-receive hook lost the
  // database is accepted all the same (its refs are journaled, ADR 0011) and its run is started
  // by the journal's reconciliation a little later, without a run id in the push's output.
  const client = new Client({ connection: temporal, namespace: platform.namespace });
  const ids: string[] = [];
  for (const p of accepted) {
    let runs: Array<{ id: string; status: string }> = [];
    await until(`the run of ${p.sha} to end`, async () => {
      runs = (await call('GET', `/api/v1/repos/${tenant}/${repo}/runs?commit=${p.sha}`)).body?.runs ?? [];
      return runs.length > 0 && runs.every((r) => TERMINAL.includes(r.status));
    }, 240_000);
    expect([p.sha, runs.map((r) => r.id)]).toEqual([p.sha, p.runs.length > 0 ? p.runs : [runs[0].id]]);
    const id = runs[0].id;
    ids.push(id);
    const executions: string[] = [];
    for await (const e of client.workflow.list({ query: `WorkflowId = '${id}'` })) executions.push(e.runId);
    expect([id, executions.length]).toEqual([id, 1]);
    // No step ran as a second start of the run: one row per step, the run on its first attempt.
    const run = (await call('GET', `/api/v1/runs/${encodeURIComponent(id)}`)).body;
    expect([id, run.attempt]).toEqual([id, 1]);
    const names = (run.steps as Array<{ job: string; name: string }>).map((s) => `${s.job}/${s.name}`);
    expect(new Set(names).size).toBe(names.length);
  }
  const all = (await call('GET', `/api/v1/repos/${tenant}/${repo}/runs`)).body.runs as Array<{ id: string }>;
  expect(all.map((r) => r.id).sort()).toEqual([...ids].sort());
  return ids;
}

/** The HTTP answers a push got (from its GIT_TRACE_CURL lines): each one's status and whether it carried Retry-After. */
function httpAnswers(trace: string): Array<{ status: number; retryAfter: boolean }> {
  const answers: Array<{ status: number; retryAfter: boolean }> = [];
  for (const line of trace.split('\n')) {
    const header = /<= Recv header: (.*?)\s*$/.exec(line)?.[1];
    if (header === undefined) continue;
    const status = /^HTTP\/[\d.]+ (\d{3})/.exec(header);
    if (status) answers.push({ status: Number(status[1]), retryAfter: false });
    else if (/^retry-after:/i.test(header) && answers.length > 0) answers[answers.length - 1]!.retryAfter = true;
  }
  return answers;
}

/** The error bodies a push was answered with (from its GIT_TRACE_CURL data lines): what the server said, for a failure's message. */
const errorBodies = (trace: string) => {
  const received = [...trace.matchAll(/<= Recv data: (.*)$/gm)].map((m) => m[1]).join('');
  return [...received.matchAll(/"error":\{[^}]*\}/g)].map((m) => m[0]).join('\n');
};

/** A push's output without the trace: what a user sees. */
const shown = (stderr: string) => stderr.split('\n').filter((l) => !/^\d\d:\d\d:\d\d\.\d+ /.test(l)).join('\n');

/** Every failed answer: 503 with Retry-After; a 500 (or anything else) is a failure of the drill. */
function expectOnly503(load: ReturnType<typeof startLoad>): void {
  expect(load.writes.filter((w) => w.status !== 201 && (w.status !== 503 || w.retryAfter === null)).map((w) => `${w.status} ${w.text}`)).toEqual([]);
  // A push refused in the window: HTTP 503, or (once the pack is sent, where git carries no status)
  // the pre-receive hook's refusal naming the 503 it got.
  expect(load.pushes.filter((p) => p.code !== 0 && !/returned error: 503|could not check this push \(503\)/.test(p.stderr)).map((p) => shown(p.stderr))).toEqual([]);
  // Over HTTP: never a 400 (a push cut off by the failover is not the client's bad input, commit
  // dde1392) nor another 5xx; every 503 says when to come back.
  const wrong = load.pushes.flatMap((p) => httpAnswers(p.stderr).filter((a) => a.status === 400 || (a.status >= 500 && !(a.status === 503 && a.retryAfter))).map((a) => `${a.status}${a.retryAfter ? '' : ' without Retry-After'}: ${shown(p.stderr)}\n${errorBodies(p.stderr)}`));
  expect(wrong).toEqual([]);
}

/** dotgit_db_reads_total of the api (its /metrics): statements on read paths, by where they went (a standby's host:port, or primary). */
async function readsByTarget(): Promise<Map<string, number>> {
  const api = platform.instances.find((i) => i.role === 'api')!;
  const text = await (await fetch(`http://127.0.0.1:${api.port}/metrics`)).text();
  return new Map([...text.matchAll(/^dotgit_db_reads_total\{target="([^"]+)"\} (\d+)/gm)].map((m) => [m[1], Number(m[2])]));
}

/** What `fn` sent to standbys and to the primary, by the api's counter. */
async function readsOf<T>(fn: () => Promise<T>): Promise<{ result: T; standby: number; primary: number }> {
  const before = await readsByTarget();
  const result = await fn();
  const after = await readsByTarget();
  const delta = (t: string) => (after.get(t) ?? 0) - (before.get(t) ?? 0);
  return { result, standby: [...after.keys()].filter((t) => t !== 'primary').reduce((n, t) => n + delta(t), 0), primary: delta('primary') };
}

test('reads on replicas through the api over HTTP: repository reads, run lists, a run and its logs index are served by standbys; a writer reads its own write at once, also while every standby is behind', async () => {
  // A second user of the tenant who writes nothing: its reads carry no read-your-writes mark.
  const readerName = `ha-reader-${process.pid}`;
  expect((await call('POST', `/api/v1/tenants/${tenant}/users`, { as: platform.adminToken, body: { username: readerName, role: 'member' } })).status).toBe(201);
  const reader = (await call('POST', '/api/v1/tokens', { as: platform.adminToken, body: { username: readerName, scopes: ['read'] } })).body.token as string;
  const { repo, work } = await pushRepository();
  const pushed = await git(['push', cloneUrlVia(platform.gatewayUrl, tenant, repo, token), 'main'], work);
  expect(pushed.code).toBe(0);
  const [runId] = runIdsFrom(pushed.stderr);
  expect(runId).toBeDefined();
  const apiPort = platform.instances.find((i) => i.role === 'api')!.port;
  await until('3 standbys in reads', async () => {
    const health = await (await fetch(`http://127.0.0.1:${apiPort}/healthz`)).json();
    return (health.database?.replicas ?? []).filter((r: { inReads: boolean }) => r.inReads).length === 3;
  }, 30_000);
  // Its logs index needs a step.
  await until('the run with its step', async () => ((await call('GET', `/api/v1/runs/${encodeURIComponent(runId)}`, { as: reader })).body?.steps ?? []).length > 0, 60_000);

  // Each read-heavy route, as the reader: answered, and its statements went to a standby.
  const served: Record<string, [number, boolean]> = {};
  for (const route of [`/api/v1/repos?owner=${tenant}`, `/api/v1/repos/${tenant}/${repo}`, `/api/v1/repos/${tenant}/${repo}/runs`, `/api/v1/runs/${encodeURIComponent(runId)}`, `/api/v1/runs/${encodeURIComponent(runId)}/logs`]) {
    const { result, standby } = await readsOf(() => call('GET', route, { as: reader }));
    served[route] = [result.status, standby > 0];
  }
  expect(Object.values(served)).toEqual(Array(5).fill([200, true]));

  // Read-your-writes: the writer's read right after its write sees it, every time.
  const unseen: string[] = [];
  for (let i = 0; i < 5; i++) {
    const name = `ryw-${Date.now().toString(36)}-${i}`;
    expect((await call('POST', '/api/v1/repos', { body: { owner: tenant, name, visibility: 'private' } })).status).toBe(201);
    const read = await call('GET', `/api/v1/repos/${tenant}/${name}`);
    if (read.status !== 200) unseen.push(`${name}: ${read.status}`);
  }
  expect(unseen).toEqual([]);

  // Every standby behind: their replay stopped (SIGSTOP of each one's startup process; WAL still
  // arrives, so commits go on). Within the lag bound they still serve reads: the reader, who wrote
  // nothing, is served by one and does not see the new repository; the writer, whose mark no
  // standby has passed, is served by the primary and sees it. An attempt whose reader read found
  // every standby already out of reads (a slow machine) shows nothing, and is made again.
  const ha = platform.haPostgres!;
  let demonstrated = false;
  let behind = '';
  for (let attempt = 1; attempt <= 3 && !demonstrated; attempt++) {
    const leader = (await ha.leader())!;
    const startups = ha.members
      .filter((m) => m.name !== leader.name)
      .map((m) =>
        Number(
          execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(m.postmasterPid())], { encoding: 'utf8' })
            .split('\n')
            .find((l) => /startup/.test(l))
            ?.trim()
            .split(/\s+/)[0],
        ),
      );
    expect(startups.every((pid) => pid > 0)).toBe(true);
    const name = (behind = `behind-${Date.now().toString(36)}`);
    let stale: { status: number; standby: number };
    let own: { status: number; standby: number };
    try {
      for (const pid of startups) process.kill(pid, 'SIGSTOP');
      expect((await call('POST', '/api/v1/repos', { body: { owner: tenant, name, visibility: 'private' } })).status).toBe(201);
      const r = await readsOf(() => call('GET', `/api/v1/repos/${tenant}/${name}`, { as: reader }));
      stale = { status: r.result.status, standby: r.standby };
      const w = await readsOf(() => call('GET', `/api/v1/repos/${tenant}/${name}`));
      own = { status: w.result.status, standby: w.standby };
    } finally {
      for (const pid of startups) process.kill(pid, 'SIGCONT');
    }
    expect([own.status, own.standby]).toEqual([200, 0]);
    if (stale.standby > 0) {
      expect(stale.status).toBe(404);
      demonstrated = true;
    }
  }
  expect(demonstrated).toBe(true);
  // Replay resumed: the reader sees it too.
  await until('the reader to see the repository', async () => (await call('GET', `/api/v1/repos/${tenant}/${behind}`, { as: reader })).status === 200, 30_000);
}, 120_000);

test('a repository whose creation was cut off after the git-server made it (the transaction failed over, the client resends after its 503) is created on the resend; a directory with refs still answers 409', async () => {
  // What the first attempt leaves: the bare repository, no row (its transaction never committed).
  const orphan = `orphan-${Date.now().toString(36)}`;
  await git(['init', '--bare', '--quiet', '--initial-branch=main', repoPath(path.join(dataDir, 'repos'), tenant, orphan)], dataDir);
  expect((await call('POST', '/api/v1/repos', { body: { owner: tenant, name: orphan, visibility: 'private' } })).status).toBe(201);
  // Someone's data without a row is not taken over.
  const taken = `taken-${Date.now().toString(36)}`;
  const dir = repoPath(path.join(dataDir, 'repos'), tenant, taken);
  await git(['init', '--bare', '--quiet', '--initial-branch=main', dir], dataDir);
  const work = await localRepo({ 'a.txt': 'a\n' });
  expect((await git(['push', '-q', dir, 'main'], work)).code).toBe(0);
  const refused = await call('POST', '/api/v1/repos', { body: { owner: tenant, name: taken, visibility: 'private' } });
  expect([refused.status, refused.body?.error?.message]).toEqual([409, `repository ${tenant}/${taken} already exists on disk`]);
});

test('kill -9 of the Postgres primary under API writes, pushes and runs: a new primary, no acknowledged write lost, every run ends once, the window answers 503 + Retry-After', async () => {
  const ha = platform.haPostgres!;
  const before = await ha.leader();
  expect(before).toBeDefined();
  const { repo, work } = await pushRepository();
  const load = startLoad({ resend: false, pushRepo: repo, work });
  await until('writes and pushes before the kill', () => load.acked().length >= 10 && load.accepted().length >= 2);
  await before!.kill();
  const killedAt = Date.now();
  const startedBefore = load.accepted().flatMap((p) => p.runs);
  await until('a repository created after the kill', () => load.acked().some((w) => w.sentAt > killedAt), 120_000);
  const first = load.acked().find((w) => w.sentAt > killedAt)!;
  await until('3 pushes accepted after the kill', () => load.accepted().filter((p) => p.sentAt > killedAt).length >= 3, 120_000);
  await load.stop();

  const after = await ha.leader();
  expect(after?.name).toBeDefined();
  expect(after!.name).not.toBe(before!.name);
  expectOnly503(load);
  const ids = await expectAcknowledgedPresent(load, repo, work);
  expect(startedBefore.every((id) => ids.includes(id))).toBe(true);
  const failedWrites = load.writes.filter((w) => w.status !== 201).length;
  const failedPushes = load.pushes.filter((p) => p.code !== 0).length;
  const reconciled = load.accepted().filter((p) => p.runs.length === 0);
  if (reconciled.length > 0) console.log(`accepted without a run id (run started by the journal's reconciliation):\n${reconciled.map((p) => shown(p.stderr)).join('\n---\n')}`);
  console.log(
    `HA platform primary loss: RTO ${((first.doneAt - killedAt) / 1000).toFixed(1)} s (kill -9 -> first repository created), ` +
      `${load.acked().length} repositories created, ${load.accepted().length} pushes accepted, ${ids.length} runs (${startedBefore.length} started before the kill, ${reconciled.length} by the push journal's reconciliation) all ended once; ` +
      `${failedWrites} writes and ${failedPushes} pushes answered 503 meanwhile; 0 acknowledged lost; ${before!.name} -> ${after!.name}`,
  );
  // The lost member rejoins as a replica of the new primary, for the switchover.
  await before!.start();
  await until('the old primary streaming again', async () => (await ha.cluster()).filter((m) => m.role !== 'leader' && m.state === 'streaming').length === 3, 180_000);
});

test('a planned switchover through POST /api/v1/admin/database/switchover under the same load: 0 failed client requests', async () => {
  const ha = platform.haPostgres!;
  const before = await ha.leader();
  const { repo, work } = await pushRepository();
  const load = startLoad({ resend: true, pushRepo: repo, work });
  await until('writes and pushes before the switchover', () => load.acked().length >= 10 && load.accepted().length >= 2);
  const started = Date.now();
  const asked = await call('POST', '/api/v1/admin/database/switchover', { as: platform.adminToken, body: {} });
  expect(asked.status).toBe(202);
  await until('a new leader', async () => ((await ha.leader())?.name ?? before!.name) !== before!.name, 120_000);
  const switched = Date.now();
  const acks = load.acked().length;
  const accepted = load.accepted().length;
  await until('more writes and pushes after the switchover', () => load.acked().length >= acks + 10 && load.accepted().length >= accepted + 2, 120_000);
  await load.stop();

  expectOnly503(load);
  // A client that honours Retry-After loses nothing: every repository it asked for was created, every commit pushed.
  const finalWrite = new Map(load.writes.map((w) => [w.name, w.status]));
  expect([...finalWrite].filter(([, s]) => s !== 201)).toEqual([]);
  const finalPush = new Map(load.pushes.map((p) => [p.sha, p.code]));
  expect([...finalPush].filter(([, c]) => c !== 0)).toEqual([]);
  const ids = await expectAcknowledgedPresent(load, repo, work);
  const resent = load.writes.filter((w) => w.status !== 201).length + load.pushes.filter((p) => p.code !== 0).length;
  console.log(
    `HA platform switchover (admin API): ${((switched - started) / 1000).toFixed(1)} s until ${(await ha.leader())?.name} led; 0 failed of ${finalWrite.size} repository creations and ${finalPush.size} pushes ` +
      `(${resent} answered 503 and were resent), ${ids.length} runs ended once; ${before!.name} -> ${(await ha.leader())?.name}`,
  );
});
