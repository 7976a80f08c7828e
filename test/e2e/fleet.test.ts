import { spawnSync } from 'node:child_process';
import { existsSync, promises as fs } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { RunscDriver } from '../../activities/sandbox/runsc-driver';
import { unmountAllUnder } from '../../activities/workspace';
import { LIMITS_OUT_OF_THE_WAY, ownPlatformEnv } from '../../infra/own-platform-env';
import { startPlatform, ROOT, type Platform } from '../../infra/platform';
import type { TopologyProcess } from '../../infra/topology';
import { git, localRepo, runIdsFrom } from '../helpers/git';
import { isAlive } from '../helpers/procs';

// Issue 11's fleet suite on the local fleet (`npm start -- --fleet`): a platform of its own with 2
// gateways, 2 apis, 2 git storage nodes (each repository replicated to the other), 3 sandbox hosts,
// an orchestration worker and node-2's storage worker, each with its own data dir, on one Postgres,
// Redis and Temporal. Seen from outside, as a user sees it: topology.json, both gateways, work done
// through either of them, and instances killed or frozen under it.

jest.setTimeout(240_000);

const dataDir = path.join(ROOT, '.test-data', `fleet-${process.pid}`);
const quiet = { info: () => undefined, debug: () => undefined, warn: (m: string) => console.warn(`[fleet] ${m}`) };
let platform: Platform;
let token: string;
const tenant = 'fleet';

interface Answer<T = any> {
  status: number;
  body: T;
  text: string;
}

async function call<T = any>(gateway: string, method: string, p: string, body?: unknown, auth = token): Promise<Answer<T>> {
  const res = await fetch(`${gateway}${p}`, {
    method,
    headers: { authorization: `Bearer ${auth}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  return { status: res.status, text, body: (res.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : text };
}

async function must<T = any>(what: string, answer: Promise<Answer<T>>, status: number): Promise<T> {
  const a = await answer;
  if (a.status !== status) throw new Error(`${what}: ${a.status} ${a.text}`);
  return a.body;
}

const cloneUrl = (gateway: string, repo: string) => {
  const u = new URL(`${gateway}/${tenant}/${repo}.git`);
  u.username = 'x';
  u.password = token;
  return u.toString();
};

let repoCount = 0;
async function createRepo(gateway: string): Promise<string> {
  const name = `r${++repoCount}`;
  await must('repo', call(gateway, 'POST', '/api/v1/repos', { owner: tenant, name, visibility: 'private' }), 201);
  return name;
}

async function topology(): Promise<TopologyProcess[]> {
  return (JSON.parse(await fs.readFile(path.join(dataDir, 'run', 'topology.json'), 'utf8')) as { processes: TopologyProcess[] }).processes;
}

interface Step {
  job: string;
  name: string;
  status: string;
  host: string | null;
  attempt: number | null;
}

async function waitForRun(gateway: string, id: string): Promise<{ status: string; steps: Step[] }> {
  const deadline = Date.now() + 150_000;
  for (;;) {
    const run = await must<{ status: string; steps: Step[] }>('run', call(gateway, 'GET', `/api/v1/runs/${encodeURIComponent(id)}`), 200);
    if (['success', 'failure', 'cancelled'].includes(run.status)) return run;
    if (Date.now() > deadline) throw new Error(`run ${id} did not finish: ${JSON.stringify(run)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

beforeAll(async () => {
  await fs.rm(dataDir, { recursive: true, force: true });
  platform = await startPlatform({
    env: ownPlatformEnv(dataDir, {
      DOTGIT_RATE_LIMITS: LIMITS_OUT_OF_THE_WAY,
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
      // 3 jobs per host, 9 in all: fewer than the jobs pushed at once, so no host can take them all
      // (with 8 each, two hosts could, and "every host ran jobs" would prove nothing).
      DOTGIT_SANDBOX_CONCURRENCY: '3',
      // The webhook test's receiver listens on 127.0.0.1.
      DOTGIT_WEBHOOK_ALLOW_HOSTS: '127.0.0.1',
    }),
    log: quiet,
    ephemeral: true,
    fleet: true,
  });
  token = platform.adminToken;
  const g = platform.gatewayUrl;
  await must('tenant', call(g, 'POST', '/api/v1/tenants', { name: tenant }), 201);
  await must('user', call(g, 'POST', `/api/v1/tenants/${tenant}/users`, { username: 'fleet-admin', role: 'admin' }), 201);
  token = (await must<{ token: string }>('token', call(g, 'POST', '/api/v1/tokens', { username: 'fleet-admin', scopes: ['read', 'write', 'admin'] }), 201)).token;
}, 300_000);

afterAll(async () => {
  if (!platform) return;
  await platform.stop();
  // runsc pins a network namespace under each host's state dir, and a killed host's job may leave
  // its tmpfs workspace mounted: released first, or the removal fails with EBUSY.
  for (const i of platform.instances) await RunscDriver.releaseState(path.join(String(i.env.DOTGIT_DATA_DIR), 'sandbox'));
  await unmountAllUnder(dataDir);
  await fs.rm(dataDir, { recursive: true, force: true });
}, 120_000);

test('topology.json lists 2 gateways, 2 apis, 2 storage nodes, 3 sandbox hosts, the orchestration worker and node-2\'s storage worker, all running', async () => {
  const processes = await topology();
  const of = (role: string) => processes.filter((p) => p.role === role).map((p) => p.instance).sort();
  expect(of('gateway')).toEqual(['gateway-1', 'gateway-2']);
  expect(of('api')).toEqual(['api-1', 'api-2']);
  expect(of('git-server')).toEqual(['node-1', 'node-2']);
  expect(of('worker')).toEqual(['orchestration-1', 'sandbox-1', 'sandbox-2', 'sandbox-3', 'storage-2']);
  for (const p of processes) expect({ instance: p.instance, alive: isAlive(p.pid) }).toEqual({ instance: p.instance, alive: true });
  const services = processes.filter((p) => ['gateway', 'api', 'git-server', 'worker'].includes(p.role));
  expect(new Set(services.map((p) => p.port)).size).toBe(services.length);
  expect(new Set(services.map((p) => p.pid)).size).toBe(services.length);
  // The gateways' URLs are the ones users are given.
  expect(processes.filter((p) => p.role === 'gateway').map((p) => p.url)).toEqual(platform.gatewayUrls);
});

test('each gateway, api, node and sandbox host has a data dir of its own; the object store is shared', () => {
  const dirOf = new Map(platform.instances.map((i) => [i.name, i.env.DOTGIT_DATA_DIR]));
  const own = ['gateway-1', 'gateway-2', 'api-1', 'api-2', 'node-1', 'node-2', 'sandbox-1', 'sandbox-2', 'sandbox-3'].map((n) => dirOf.get(n));
  expect(new Set(own).size).toBe(own.length);
  // Storage workers work on their node's disk: node-1's is the orchestration worker.
  expect(dirOf.get('orchestration-1')).toBe(dirOf.get('node-1'));
  expect(dirOf.get('storage-2')).toBe(dirOf.get('node-2'));
  expect(new Set(platform.instances.map((i) => i.env.DOTGIT_FS_OBJECTS_DIR))).toEqual(new Set([path.join(dataDir, 'objects')]));
});

test('npm start refuses an unknown flag (usage, exit 2) and a DOTGIT_FLEET that is no boolean (exit 1), starting nothing', () => {
  const start = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'infra', 'start.ts'), ...args], {
      cwd: ROOT,
      env: ownPlatformEnv(path.join(dataDir, 'never-started'), env),
      encoding: 'utf8',
      timeout: 60_000,
    });
  const bad = start(['--flete']);
  expect({ status: bad.status, out: bad.stdout }).toEqual({ status: 2, out: expect.stringMatching(/^usage: npm start \[-- .*--fleet\]/m) });
  const badEnv = start([], { DOTGIT_FLEET: 'yes' });
  expect({ status: badEnv.status, err: badEnv.stderr }).toEqual({ status: 1, err: expect.stringContaining('DOTGIT_FLEET must be 1/true or 0/false') });
  expect(existsSync(path.join(dataDir, 'never-started'))).toBe(false);
});

test('both gateways answer /healthz', async () => {
  expect(platform.gatewayUrls).toHaveLength(2);
  for (const g of platform.gatewayUrls) {
    const res = await fetch(`${g}/healthz`);
    expect({ gateway: g, status: res.status }).toEqual({ gateway: g, status: 200 });
  }
});

test('a repository made and pushed through gateway 1 is read through gateway 2', async () => {
  const [g1, g2] = platform.gatewayUrls;
  const repo = await createRepo(g1);
  expect((await call(g2, 'GET', `/api/v1/repos/${tenant}/${repo}`)).status).toBe(200);
  const work = await localRepo({ 'hello.txt': 'from gateway 1\n' });
  const pushed = await git(['push', cloneUrl(g1, repo), 'main'], work);
  expect(pushed.code).toBe(0);
  const clone = path.join(work, 'clone');
  const cloned = await git(['clone', '-q', cloneUrl(g2, repo), clone]);
  expect(cloned.code).toBe(0);
  expect(await fs.readFile(path.join(clone, 'hello.txt'), 'utf8')).toBe('from gateway 1\n');
});

test('a push through either gateway runs its pipeline to success on the sandbox hosts; the apis serve its artifact', async () => {
  const yaml = [
    'jobs:',
    '  build:',
    '    steps:',
    '      - name: write',
    '        run: echo one > made.txt',
    '      - name: check',
    '        run: test "$(cat made.txt)" = one',
    '    artifacts: [made.txt]',
    '',
  ].join('\n');
  for (const g of platform.gatewayUrls) {
    const repo = await createRepo(g);
    const work = await localRepo({ '.dotgit/pipeline.yml': yaml });
    const pushed = await git(['push', cloneUrl(g, repo), 'main'], work);
    const [id] = runIdsFrom(pushed.stderr);
    expect(id).toBeDefined();
    const run = await waitForRun(g, id!);
    expect({ gateway: g, status: run.status }).toEqual({ gateway: g, status: 'success' });
    const hosts = new Set(run.steps.map((s) => s.host));
    expect(hosts.size).toBe(1);
    expect(['sandbox-1', 'sandbox-2', 'sandbox-3']).toContain([...hosts][0]);
    // Uploaded by a sandbox host, read by an api: one object store, as a bucket would be.
    const artifact = await call(g, 'GET', `/api/v1/runs/${encodeURIComponent(id!)}/artifacts/made.txt`);
    expect({ status: artifact.status, text: artifact.text }).toEqual({ status: 200, text: 'one\n' });
  }
});

/** Three steps: the later ones read (and add to) what the earlier ones wrote in the job's workspace. */
const THREE_STEPS = [
  'jobs:',
  '  build:',
  '    steps:',
  '      - name: write',
  '        run: echo one > made.txt && sleep 1',
  '      - name: append',
  '        run: cat made.txt && echo two >> made.txt',
  '      - name: check',
  '        run: test "$(cat made.txt)" = "$(printf \'one\\ntwo\')"',
  '',
].join('\n');

test('30 pushes through both gateways to repositories on both nodes: every 3-step job succeeds on one host, every sandbox host ran jobs', async () => {
  const REPOS = 10;
  const PUSHES_EACH = 3;
  const gateways = platform.gatewayUrls;
  const repos: string[] = [];
  for (let i = 0; i < REPOS; i++) repos.push(await createRepo(gateways[i % gateways.length]!));
  // Placed least-used first: both nodes hold some.
  const nodes = await Promise.all(repos.map(async (r) => (await must<{ node: string }>('repo', call(platform.gatewayUrl, 'GET', `/api/v1/repos/${tenant}/${r}`), 200)).node));
  expect(new Set(nodes)).toEqual(new Set(['node-1', 'node-2']));

  // Each repository's pushes go one after another (each a new commit), through alternating gateways.
  const runIds = (
    await Promise.all(
      repos.map(async (repo, i) => {
        const work = await localRepo({ '.dotgit/pipeline.yml': THREE_STEPS });
        const ids: string[] = [];
        for (let n = 0; n < PUSHES_EACH; n++) {
          if (n > 0) {
            await fs.writeFile(path.join(work, 'n.txt'), `${n}\n`);
            await git(['add', 'n.txt'], work);
            await git(['commit', '-q', '-m', `push ${n}`], work);
          }
          const pushed = await git(['push', '-q', cloneUrl(gateways[(i + n) % gateways.length]!, repo), 'main'], work);
          const [id] = runIdsFrom(pushed.stderr);
          if (!id) throw new Error(`push ${n} to ${repo}: no run (${pushed.code}): ${pushed.stderr}`);
          ids.push(id);
        }
        return ids;
      }),
    )
  ).flat();
  expect(runIds).toHaveLength(REPOS * PUSHES_EACH);

  const runs = await Promise.all(runIds.map((id, i) => waitForRun(gateways[i % gateways.length]!, id)));
  expect(runs.filter((r) => r.status !== 'success').map((r) => r.steps)).toEqual([]);
  for (const run of runs) {
    expect(run.steps.map((s) => s.name)).toEqual(['write', 'append', 'check']);
    // The job's steps ran where its workspace is: one host.
    expect(new Set(run.steps.map((s) => s.host)).size).toBe(1);
  }
  expect(new Set(runs.map((r) => r.steps[0]!.host))).toEqual(new Set(['sandbox-1', 'sandbox-2', 'sandbox-3']));
  // Sandbox hosts have no repository disk: their sources come over the network.
  for (const n of ['sandbox-1', 'sandbox-2', 'sandbox-3']) expect(existsSync(path.join(dataDir, 'fleet', n, 'repos'))).toBe(false);
});

test("push webhooks of repositories on both nodes carry their commits (planned by each node's storage worker, on its disk)", async () => {
  const received: Array<{ repo: string; after: string; head: string | undefined }> = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const json = JSON.parse(body) as { repository?: { name: string }; after?: string; head_commit?: { id: string } };
      if (req.headers['x-github-event'] === 'push') received.push({ repo: json.repository!.name, after: json.after!, head: json.head_commit?.id });
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    const g = platform.gatewayUrl;
    const byNode = new Map<string, string>();
    for (let i = 0; i < 4 && byNode.size < 2; i++) {
      const repo = await createRepo(g);
      byNode.set((await must<{ node: string }>('repo', call(g, 'GET', `/api/v1/repos/${tenant}/${repo}`), 200)).node, repo);
    }
    expect([...byNode.keys()].sort()).toEqual(['node-1', 'node-2']);
    const pushedSha = new Map<string, string>();
    for (const repo of byNode.values()) {
      await must('webhook', call(g, 'POST', `/api/v1/repos/${tenant}/${repo}/webhooks`, { url, secret: 'fleet-secret', events: ['push'] }), 201);
      const work = await localRepo({ 'x.txt': `${repo}\n` });
      expect((await git(['push', '-q', cloneUrl(g, repo), 'main'], work)).code).toBe(0);
      pushedSha.set(repo, (await git(['rev-parse', 'HEAD'], work)).stdout.trim());
    }
    for (const until = Date.now() + 60_000; received.length < 2 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 250));
    const sorted = (list: Array<{ repo: string }>) => [...list].sort((a, b) => a.repo.localeCompare(b.repo));
    expect(sorted(received)).toEqual(sorted([...pushedSha].map(([repo, sha]) => ({ repo, after: sha, head: sha }))));
  } finally {
    server.close();
  }
});

test('kill -9 of api-1 and gateway-1 under load: clients of gateway-2 see no error; the runner restarts both, topology.json lists their new pids', async () => {
  const before = await topology();
  const pidOf = (list: TopologyProcess[], instance: string) => list.find((p) => p.instance === instance)?.pid;
  const [, g2] = platform.gatewayUrls;
  const repo = await createRepo(g2!);
  let stop = false;
  let answered = 0;
  const failures: string[] = [];
  const client = async () => {
    while (!stop) {
      const a = await call(g2!, 'GET', `/api/v1/repos/${tenant}/${repo}`).catch((err: Error) => ({ status: 0, text: err.message }));
      if (a.status === 200) answered++;
      else failures.push(`${a.status} ${a.text}`);
    }
  };
  const clients = Array.from({ length: 4 }, client);
  await new Promise((r) => setTimeout(r, 500));
  process.kill(pidOf(before, 'api-1')!, 'SIGKILL');
  process.kill(pidOf(before, 'gateway-1')!, 'SIGKILL');
  const deadline = Date.now() + 60_000;
  let now = before;
  while (['api-1', 'gateway-1'].some((i) => !pidOf(now, i) || pidOf(now, i) === pidOf(before, i) || !isAlive(pidOf(now, i)!))) {
    if (Date.now() > deadline) throw new Error(`not restarted: ${JSON.stringify(now)}`);
    await new Promise((r) => setTimeout(r, 250));
    now = await topology();
  }
  stop = true;
  await Promise.all(clients);
  expect(failures).toEqual([]);
  expect(answered).toBeGreaterThan(0);
  const healthy = async () => (await fetch(`${platform.gatewayUrls[0]}/healthz`).catch(() => undefined))?.status;
  for (const until = Date.now() + 30_000; (await healthy()) !== 200 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 250));
  expect(await healthy()).toBe(200);
});

test('kill -9 of a sandbox host mid-step: the runner starts it again under its host id, the step runs again (attempt 2, the log says why) and the run succeeds', async () => {
  // The first attempt pauses after tick 2, so the kill lands mid-step however late the test sees the tick.
  const yaml = THREE_STEPS.replace('cat made.txt && echo two', 'for i in $(seq 1 20); do echo tick $i; if [ $i = 2 ] && [ $DOTGIT_STEP_ATTEMPT = 1 ]; then sleep 30; fi; sleep 0.5; done && cat made.txt && echo two');
  const g = platform.gatewayUrl;
  const repo = await createRepo(g);
  const pushed = await git(['push', cloneUrl(g, repo), 'main'], await localRepo({ '.dotgit/pipeline.yml': yaml }));
  const [id] = runIdsFrom(pushed.stderr);
  expect(id).toBeDefined();
  const runPath = `/api/v1/runs/${encodeURIComponent(id!)}`;
  // The host running the long step, once the step has shown it runs.
  let host: string | undefined;
  for (const until = Date.now() + 90_000; !host; ) {
    if (Date.now() > until) throw new Error('the long step never ran');
    const run = await must<{ steps: Step[] }>('run', call(g, 'GET', runPath), 200);
    const s = run.steps.find((x) => x.name === 'append' && x.status === 'running' && x.host);
    if (s && (await call(g, 'GET', `${runPath}/logs?job=build&step=append`)).text.includes('tick 2')) host = s.host!;
    else await new Promise((r) => setTimeout(r, 250));
  }
  const before = (await topology()).find((p) => p.role === 'worker' && p.instance === host)!;
  process.kill(before.pid, 'SIGKILL');
  const run = await waitForRun(g, id!);
  expect(run.status).toBe('success');
  // The killed step ran again (attempt 2, its log saying why), the job's steps on one host.
  expect(run.steps.find((x) => x.name === 'append')!.attempt).toBeGreaterThan(1);
  expect(new Set(run.steps.map((x) => x.host)).size).toBe(1);
  expect((await call(g, 'GET', `${runPath}/logs?job=build&step=append`)).text).toContain(`after worker lost (attempt 1 was running on ${host})`);
  const after = (await topology()).find((p) => p.role === 'worker' && p.instance === host)!;
  expect(after.pid).not.toBe(before.pid);
  expect(isAlive(after.pid)).toBe(true);
});

test("a stopped storage node: pushes to its repositories answer 503 naming it, with Retry-After, their clones come from the replica node; the other node's still clone through both gateways; once it is back, pushes to it work", async () => {
  const [g1, g2] = platform.gatewayUrls as [string, string];
  // Two fresh repositories with a commit each, found on both nodes.
  const byNode = new Map<string, string>();
  const work = await localRepo({ 'a.txt': 'a\n' });
  for (let i = 0; i < 4 && byNode.size < 2; i++) {
    const repo = await createRepo(g1);
    expect((await git(['push', '-q', cloneUrl(g1, repo), 'main'], work)).code).toBe(0);
    byNode.set((await must<{ node: string }>('repo', call(g1, 'GET', `/api/v1/repos/${tenant}/${repo}`), 200)).node, repo);
  }
  const [onNode1, onNode2] = [byNode.get('node-1')!, byNode.get('node-2')!];
  expect([onNode1, onNode2].every(Boolean)).toBe(true);
  expect((await must<{ replicas: string[] }>('repo', call(g1, 'GET', `/api/v1/repos/${tenant}/${onNode2}`), 200)).replicas).toEqual(['node-1']);
  const refs = (g: string, repo: string, service: string) =>
    fetch(`${g}/${tenant}/${repo}.git/info/refs?service=${service}`, {
      headers: { authorization: `Basic ${Buffer.from(`x:${token}`).toString('base64')}` },
      signal: AbortSignal.timeout(5_000),
    }).catch(() => undefined);

  const node2 = (await topology()).find((p) => p.instance === 'node-2')!;
  // Frozen, not killed: the runner would start a killed node again at once.
  process.kill(node2.pid, 'SIGSTOP');
  try {
    let answer: Response | undefined;
    for (const until = Date.now() + 60_000; answer?.status !== 503; ) {
      if (Date.now() > until) throw new Error(`no 503 for ${onNode2} while node-2 is stopped: ${answer?.status}`);
      answer = await refs(g1, onNode2, 'git-receive-pack');
      if (answer?.status !== 503) await new Promise((r) => setTimeout(r, 500));
    }
    expect(answer.headers.get('retry-after')).toBeTruthy();
    expect(await answer.text()).toContain(`is on storage node node-2, which is down`);
    // Its clones are served by its replica on node-1 (once that has caught up with the push).
    let replicaClone = await git(['clone', '-q', cloneUrl(g2, onNode2), path.join(work, 'replica-0')], undefined, {}, { timeoutMs: 30_000 });
    for (let i = 1; replicaClone.code !== 0 && i < 30; i++) {
      await new Promise((r) => setTimeout(r, 1000));
      replicaClone = await git(['clone', '-q', cloneUrl(g2, onNode2), path.join(work, `replica-${i}`)], undefined, {}, { timeoutMs: 30_000 });
    }
    expect({ code: replicaClone.code, err: replicaClone.code ? replicaClone.stderr : '' }).toEqual({ code: 0, err: '' });
    for (const g of [g1, g2]) {
      const cloned = await git(['clone', '-q', cloneUrl(g, onNode1), path.join(work, `clone-${g.split(':').pop()}`)], undefined, {}, { timeoutMs: 30_000 });
      expect({ gateway: g, code: cloned.code, err: cloned.code ? cloned.stderr : '' }).toEqual({ gateway: g, code: 0, err: '' });
    }
  } finally {
    process.kill(node2.pid, 'SIGCONT');
  }
  await fs.writeFile(path.join(work, 'b.txt'), 'b\n');
  await git(['add', 'b.txt'], work);
  await git(['commit', '-q', '-m', 'after the node came back'], work);
  let pushed = await git(['push', '-q', cloneUrl(g2, onNode2), 'main'], work, {}, { timeoutMs: 30_000 });
  for (const until = Date.now() + 60_000; pushed.code !== 0 && Date.now() < until; ) {
    await new Promise((r) => setTimeout(r, 1000));
    pushed = await git(['push', '-q', cloneUrl(g2, onNode2), 'main'], work, {}, { timeoutMs: 30_000 });
  }
  expect({ code: pushed.code, err: pushed.stderr }).toEqual({ code: 0, err: expect.any(String) });
});
