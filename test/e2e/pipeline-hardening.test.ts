import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { platformInfo } from '../harness/platform-info';
import { api, createPrivateRepo, createTenantWithAdmin, waitForRun, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom, writeFiles } from '../helpers/git';
import { isAlive, pidsMatching } from '../helpers/procs';
import { readSse } from '../helpers/sse';
import { DEFAULT_LIMITS } from '../../activities/sandbox/runsc-spec';

// The pipeline language's step controls and the sandbox's limits on the real platform (runsc):
// timeout, retry, cancel (sandbox gone), and a fork bomb and a memory bomb contained.

let owner: TenantFixture;
let repo: string;
let work: string;

beforeAll(async () => {
  owner = await createTenantWithAdmin();
  repo = await createPrivateRepo(owner, 'hard');
  work = await localRepo({ 'README.md': 'x\n' });
});

async function pushPipeline(yaml: string, message: string): Promise<string> {
  await writeFiles(work, { '.dotgit/pipeline.yml': yaml });
  await git(['add', '-A'], work);
  await git(['commit', '-qm', message], work);
  const push = await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work);
  expect(push.code).toBe(0);
  const ids = runIdsFrom(push.stderr);
  expect(ids).toHaveLength(1);
  return ids[0];
}

const logsOf = async (id: string, job: string, step: string) =>
  (await api('GET', `/api/v1/runs/${encodeURIComponent(id)}/logs?job=${job}&step=${step}`, { token: owner.token })).text;

test('a step past its timeout is stopped and fails the run, saying so', async () => {
  const id = await pushPipeline('jobs:\n  slow:\n    steps:\n      - name: wait\n        timeout: 2s\n        run: |\n          echo begun\n          sleep 60\n          echo never\n', 'timeout');
  const run = await waitForRun(id, owner.token);
  expect(run.status).toBe('failure');
  expect(run.steps[0]).toMatchObject({ name: 'wait', status: 'failure' });
  const log = await logsOf(id, 'slow', 'wait');
  expect(log).toContain('begun');
  expect(log).toContain('dotgit: step timed out');
  expect(log).not.toContain('never');
});

test('a flaky step passes on retry, each attempt numbered', async () => {
  const id = await pushPipeline('jobs:\n  flaky:\n    steps:\n      - name: try\n        retry: 2\n        run: |\n          echo "attempt $DOTGIT_STEP_ATTEMPT"\n          test "$DOTGIT_STEP_ATTEMPT" -ge 2\n', 'flaky');
  const run = await waitForRun(id, owner.token);
  expect(run.status).toBe('success');
  const log = await logsOf(id, 'flaky', 'try');
  expect(log).toContain('attempt 2');
  expect(log).not.toContain('attempt 3');
});

test('cancel of a running step: the sandbox is gone long before the step would end and the run is cancelled', async () => {
  const sandboxRoot = path.join(platformInfo().dataDir, 'sandbox');
  const before = new Set(pidsMatching(sandboxRoot));
  const id = await pushPipeline('jobs:\n  slow:\n    steps:\n      - name: wait\n        run: |\n          echo started\n          sleep 300\n', 'cancel');
  const self = `/api/v1/runs/${encodeURIComponent(id)}`;
  let sandbox: number[] = [];
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const r = await api('GET', self, { token: owner.token });
    sandbox = pidsMatching(sandboxRoot).filter((p) => !before.has(p));
    if (r.body.steps?.[0]?.status === 'running' && (await logsOf(id, 'slow', 'wait')).includes('started') && sandbox.length > 0) break;
    await new Promise((res) => setTimeout(res, 200));
  }
  expect(sandbox.length).toBeGreaterThan(0);
  expect((await api('POST', `${self}/cancel`, { token: owner.token })).status).toBe(202);
  const cancelledAt = Date.now();
  // Gone long before the step's 300 s: the cancel crosses Temporal, the heartbeat and runsc kill, slow on a loaded machine.
  while (sandbox.some(isAlive) && Date.now() - cancelledAt < 60_000) await new Promise((res) => setTimeout(res, 100));
  expect(sandbox.filter(isAlive)).toEqual([]);
  const run = await waitForRun(id, owner.token);
  expect(run.status).toBe('cancelled');
  expect(run.steps[0].status).toBe('cancelled');
});

test('a fork bomb and a memory bomb are contained: their steps fail, the next job runs normally', async () => {
  const id = await pushPipeline(
    `jobs:
  forkbomb:
    steps:
      - name: bomb
        timeout: 20s
        run: |
          bomb() { bomb | bomb & }
          bomb 2>/dev/null
          sleep 5
          echo "guest processes: $(ls /proc | grep -c '^[0-9]')"
          exit 1
  memorybomb:
    steps:
      - name: bomb
        timeout: 60s
        run: |
          python3 -c 'a = []
          while True: a.append(bytearray(64 * 1024 * 1024))'
  after:
    needs: []
    steps:
      - name: fine
        run: echo "still fine"
`,
    'bombs',
  );
  // Sample the host's process count while the bombs go off: gVisor keeps guest processes off the host.
  const hostProcesses = () => readdirSync('/proc').filter((e) => /^\d+$/.test(e)).length;
  const baseline = hostProcesses();
  let peak = baseline;
  const sampler = setInterval(() => (peak = Math.max(peak, hostProcesses())), 100);
  const run = await waitForRun(id, owner.token, 180_000).finally(() => clearInterval(sampler));
  // With systrap, each guest process has a host stub: bounded by the guest's RLIMIT_NPROC.
  expect(peak - baseline).toBeLessThan(DEFAULT_LIMITS.processes + 100);
  const byJob = Object.fromEntries(run.steps.map((s: { job: string; status: string; exitCode: number | null }) => [s.job, s]));
  expect(byJob.forkbomb.status).toBe('failure');
  expect(byJob.memorybomb.status).toBe('failure');
  // Killed by the sandbox's memory limit (cgroup), not by the host's OOM killer taking something else.
  expect(byJob.memorybomb.exitCode).toBe(137);
  expect(byJob.after.status).toBe('success');
  expect(await logsOf(id, 'after', 'fine')).toContain('still fine');
  // The platform is unharmed.
  expect((await api('GET', '/healthz')).status).toBe(200);
});

test('files a job puts in /artifacts, in any of its steps, are uploaded after its last step', async () => {
  const id = await pushPipeline(
    'jobs:\n  report:\n    steps:\n      - name: first\n        run: mkdir -p /artifacts/report && echo "from step one" > /artifacts/report/a.txt\n      - name: second\n        run: |\n          test -f "$DOTGIT_ARTIFACTS/report/a.txt"\n          echo "from step two" > "$DOTGIT_ARTIFACTS/b.txt"\n',
    'artifacts dir',
  );
  const run = await waitForRun(id, owner.token);
  expect(run.status).toBe('success');
  const list = await api('GET', `/api/v1/runs/${encodeURIComponent(id)}/artifacts`, { token: owner.token });
  expect(list.body.artifacts.map((a: { job: string; path: string }) => `${a.job}:${a.path}`)).toEqual(['report:b.txt', 'report:report/a.txt']);
  const a = await api('GET', `/api/v1/runs/${encodeURIComponent(id)}/artifacts/report/a.txt`, { token: owner.token });
  expect(a.text).toBe('from step one\n');
});

test("a job's workspace is a size-capped tmpfs on the worker, mounted for the job and gone after it", async () => {
  const workspaces = path.join(platformInfo().dataDir, 'workspaces') + path.sep;
  const tmpfsUnder = () =>
    readFileSync('/proc/self/mounts', 'utf8')
      .split('\n')
      .map((l) => l.split(' '))
      .filter((f) => f[2] === 'tmpfs' && f[1]?.startsWith(workspaces));
  const before = new Set(tmpfsUnder().map((f) => f[1]));
  const id = await pushPipeline('jobs:\n  ws:\n    steps:\n      - name: hold\n        run: |\n          echo in-tmpfs > marker.txt\n          sleep 4\n', 'tmpfs workspace');
  let mount: string[] | undefined;
  const deadline = Date.now() + 60_000;
  while (!mount && Date.now() < deadline) {
    mount = tmpfsUnder().find((f) => !before.has(f[1]) && existsSync(path.join(f[1], 'marker.txt')));
    if (!mount) await new Promise((r) => setTimeout(r, 100));
  }
  expect(mount).toBeDefined();
  expect(mount![3]).toMatch(/size=\d+k/);
  expect((await waitForRun(id, owner.token)).status).toBe('success');
  expect(tmpfsUnder().some((f) => f[1] === mount![1])).toBe(false);
  expect(existsSync(mount![1])).toBe(false);
});

// Issue 10: a secret across the 64 KiB line cut, a timed-out step that exits 0, a full workspace.

test('a secret printed across the 64 KiB line cut is masked in the stored log and the live stream', async () => {
  const secret = 'tok-straddle-9f8e7d6c5b4a';
  expect((await api('PUT', `/api/v1/repos/${owner.tenant}/${repo}/secrets/STRADDLE`, { token: owner.token, body: { value: secret } })).status).toBe(204);
  const id = await pushPipeline(
    'jobs:\n  leak:\n    secrets: [STRADDLE]\n    steps:\n      - name: print\n        run: |\n' +
      `          node -e 'process.stdout.write("x".repeat(65531) + process.env.STRADDLE + "\\n")'\n`,
    'straddling secret',
  );
  const run = await waitForRun(id, owner.token);
  expect(run.status).toBe('success');
  const log = await logsOf(id, 'leak', 'print');
  expect(log).toContain('***');
  const live = await readSse(`${platformInfo().gatewayUrl}/api/v1/runs/${encodeURIComponent(id)}/events`, { token: owner.token });
  const liveText = live.events.filter((e) => e.event === 'log').map((e) => e.data.line).join('\n');
  expect(liveText).toContain('***');
  for (const text of [log, liveText]) for (const piece of ['tok-str', 'straddle-9f', '5b4a']) expect(text).not.toContain(piece);
});

// The timeout leaves the sandbox ample time to boot and set its trap on a loaded machine; the sleep outlasts it.
test('a step that exits 0 on SIGTERM after its timeout fails (exit 124) and the next step does not run', async () => {
  const id = await pushPipeline(
    "jobs:\n  slow:\n    steps:\n      - name: wait\n        timeout: 15s\n        run: |\n          trap 'exit 0' TERM\n          echo begun\n          sleep 30 &\n          wait\n      - name: after\n        run: echo after-ran\n",
    'timeout trap',
  );
  const run = await waitForRun(id, owner.token);
  expect(run.status).toBe('failure');
  expect(run.steps).toEqual([
    expect.objectContaining({ name: 'wait', status: 'failure', exitCode: 124 }),
    expect.objectContaining({ name: 'after', status: 'skipped' }),
  ]);
  expect(await logsOf(id, 'slow', 'wait')).toContain('dotgit: step timed out');
});

test('filling the tmpfs workspace fails the step with "No space left on device", not exit 137', async () => {
  const id = await pushPipeline(
    'jobs:\n  fill:\n    steps:\n      - name: dd\n        run: dd if=/dev/zero of=big bs=1M count=2200\n',
    'fill the workspace',
  );
  const run = await waitForRun(id, owner.token);
  expect(run.status).toBe('failure');
  expect(run.steps[0].exitCode).not.toBe(137);
  expect(run.steps[0].exitCode).toBe(1);
  expect(await logsOf(id, 'fill', 'dd')).toMatch(/No space left on device/);
}, 180_000);
