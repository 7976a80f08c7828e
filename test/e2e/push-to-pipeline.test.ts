import { createHash } from 'node:crypto';
import path from 'node:path';
import { Redis } from 'ioredis';
import { logStreamKey, repoGenerationKey, streamFields } from '../../core/redis';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, waitForRun, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom, tempDir, writeFiles } from '../helpers/git';

// The foundation's whole path on real parts: git client → gateway → git-server → outbox →
// Temporal → worker → sandbox → logs/artifacts → Postgres → API.

const PIPELINE = `
on:
  push:
    branches: [main]
jobs:
  build:
    steps:
      - name: hello
        run: |
          echo "hello from $DOTGIT_REPO at $DOTGIT_COMMIT"
          echo "to stderr" >&2
  package:
    needs: [build]
    steps:
      - name: make-artifact
        run: |
          mkdir -p out
          printf 'artifact for %s\\n' "$DOTGIT_COMMIT" > out/result.txt
          head -c 3000 /dev/zero | tr '\\0' 'x' >> out/result.txt
          echo "packaged"
    artifacts: [out/result.txt]
`;

let owner: TenantFixture;
const repo = 'web';
let work: string;
let firstRunId: string;
let firstCommit: string;

beforeAll(async () => {
  owner = await createTenantWithAdmin();
  const created = await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name: repo, visibility: 'private' } });
  expect(created.status).toBe(201);
  expect(created.body.cloneUrl).toBe(`${platformInfo().gatewayUrl}/${owner.tenant}/${repo}.git`);
  work = await localRepo({ '.dotgit/pipeline.yml': PIPELINE, 'README.md': '# web\n' });
});

test('a push starts a pipeline whose two jobs succeed, with logs and a byte-identical artifact', async () => {
  const generation = async () => {
    const r = new Redis(platformInfo().redisUrl);
    try {
      return Number((await r.get(repoGenerationKey(`${owner.tenant}/${repo}`))) ?? 0);
    } finally {
      r.disconnect();
    }
  };
  const g0 = await generation();
  const push = await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work);
  expect(push.code).toBe(0);
  const ids = runIdsFrom(push.stderr);
  expect(ids).toHaveLength(1);
  firstRunId = ids[0];
  expect(firstRunId).toMatch(new RegExp(`^pipeline:${owner.tenant}:${repo}:`));
  firstCommit = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();

  const run = await waitForRun(firstRunId, owner.token);
  expect(run.status).toBe('success');
  // Both the push (its post-receive hook before git answers, and once more after receive-pack exits)
  // and the pipeline's finalisation invalidated the repository's caches.
  const deadline = Date.now() + 10_000;
  while ((await generation()) < g0 + 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  expect(await generation()).toBe(g0 + 3);
  expect(run.commit).toBe(firstCommit);
  expect(run.ref).toBe('refs/heads/main');
  expect(run.steps.map((s: { job: string; name: string; status: string; exitCode: number }) => [s.job, s.name, s.status, s.exitCode])).toEqual([
    ['build', 'hello', 'success', 0],
    ['package', 'make-artifact', 'success', 0],
  ]);

  const logs = await api('GET', `/api/v1/runs/${encodeURIComponent(firstRunId)}/logs?job=build&step=hello`, { token: owner.token });
  expect(logs.status).toBe(200);
  expect(logs.text).toContain(`hello from ${owner.tenant}/${repo} at ${firstCommit}`);
  expect(logs.text).toContain('to stderr');

  // Every line also went, as printed, to the run's Redis stream (live logs), tagged with its step, stream and attempt.
  const redis = new Redis(platformInfo().redisUrl);
  try {
    const entries = (await redis.xrange(logStreamKey(firstRunId), '-', '+')).map(([, f]) => streamFields(f));
    expect(entries).toEqual(
      expect.arrayContaining([
        { job: 'build', step: 'hello', stream: 'stdout', line: `hello from ${owner.tenant}/${repo} at ${firstCommit}`, attempt: '1' },
        { job: 'build', step: 'hello', stream: 'stderr', line: 'to stderr', attempt: '1' },
        { job: 'package', step: 'make-artifact', stream: 'stdout', line: 'packaged', attempt: '1' },
      ]),
    );
  } finally {
    redis.disconnect();
  }

  const list = await api('GET', `/api/v1/runs/${encodeURIComponent(firstRunId)}/artifacts`, { token: owner.token });
  expect(list.body.artifacts.map((a: { path: string }) => a.path)).toEqual(['out/result.txt']);
  const res = await fetch(`${platformInfo().gatewayUrl}/api/v1/runs/${encodeURIComponent(firstRunId)}/artifacts/out/result.txt`, {
    headers: { authorization: `Bearer ${owner.token}` },
  });
  expect(res.status).toBe(200);
  const bytes = Buffer.from(await res.arrayBuffer());
  const expected = Buffer.concat([Buffer.from(`artifact for ${firstCommit}\n`), Buffer.alloc(3000, 'x')]);
  expect(bytes.equals(expected)).toBe(true);
  expect(list.body.artifacts[0].sha256).toBe(createHash('sha256').update(expected).digest('hex'));

  const runs = await api('GET', `/api/v1/repos/${owner.tenant}/${repo}/runs?commit=${firstCommit}`, { token: owner.token });
  expect(runs.body.runs.map((r: { id: string }) => r.id)).toEqual([firstRunId]);
});

test('a failing step fails the run and records its exit code', async () => {
  await writeFiles(work, {
    '.dotgit/pipeline.yml': `jobs:\n  check:\n    steps:\n      - name: boom\n        run: |\n          echo before failing\n          exit 7\n      - name: never\n        run: echo never\n`,
  });
  await git(['commit', '-qam', 'failing pipeline'], work);
  const push = await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work);
  expect(push.code).toBe(0);
  const [id] = runIdsFrom(push.stderr);
  const run = await waitForRun(id, owner.token);
  expect(run.status).toBe('failure');
  expect(run.steps).toEqual([
    expect.objectContaining({ job: 'check', name: 'boom', status: 'failure', exitCode: 7 }),
    expect.objectContaining({ job: 'check', name: 'never', status: 'skipped', exitCode: null }),
  ]);
});

test('an invalid pipeline file fails the run with line and problem', async () => {
  await writeFiles(work, { '.dotgit/pipeline.yml': `jobs:\n  check:\n    steps:\n      - name: x\n        rn: echo typo\n` });
  await git(['commit', '-qam', 'invalid pipeline'], work);
  const push = await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work);
  const [id] = runIdsFrom(push.stderr);
  const run = await waitForRun(id, owner.token);
  expect(run.status).toBe('failure');
  expect(run.message).toMatch(/pipeline\.yml:\d+:\d+: .*rn/);
});

test.each([
  ['2', 'version 2'],
  ['0', 'version 0'],
])('clone back through the gateway with protocol v%s: same HEAD, fsck clean', async (version) => {
  const dir = path.join(tempDir(), 'clone');
  const clone = await git(['-c', `protocol.version=${version}`, 'clone', '-q', cloneUrl(owner.tenant, repo, owner.token), dir], undefined, { GIT_TRACE_PACKET: '1' });
  expect(clone.code).toBe(0);
  // The packet trace shows which protocol was actually spoken.
  if (version === '2') expect(clone.stderr).toContain('git< version 2');
  else expect(clone.stderr).not.toContain('git< version 2');
  const head = (await git(['rev-parse', 'HEAD'], dir)).stdout.trim();
  expect(head).toBe((await git(['rev-parse', 'HEAD'], work)).stdout.trim());
  const fsck = await git(['fsck', '--full', '--strict'], dir);
  expect(fsck.code).toBe(0);
});

test('push without a token is 401 and with a read-only token 403; neither creates a run', async () => {
  const before = await api('GET', `/api/v1/repos/${owner.tenant}/${repo}/runs`, { token: owner.token });
  await writeFiles(work, { '.dotgit/pipeline.yml': PIPELINE, 'unauth.txt': 'x\n' });
  await git(['commit', '-qam', 'should not land'], work);

  const anonymous = await git(['push', cloneUrl(owner.tenant, repo), 'main'], work);
  expect(anonymous.code).not.toBe(0);
  const raw = await fetch(`${cloneUrl(owner.tenant, repo)}/info/refs?service=git-receive-pack`);
  expect(raw.status).toBe(401);

  const readOnly = await api<{ token: string }>('POST', '/api/v1/tokens', { token: owner.token, body: { scopes: ['read'] } });
  expect(readOnly.status).toBe(201);
  const denied = await fetch(`${cloneUrl(owner.tenant, repo)}/info/refs?service=git-receive-pack`, {
    headers: { authorization: `Basic ${Buffer.from(`x:${readOnly.body.token}`).toString('base64')}` },
  });
  expect(denied.status).toBe(403);
  const readPush = await git(['push', cloneUrl(owner.tenant, repo, readOnly.body.token), 'main'], work);
  expect(readPush.code).not.toBe(0);
  expect(readPush.stderr).toMatch(/403/);
  // The read token still reads.
  const ls = await git(['ls-remote', cloneUrl(owner.tenant, repo, readOnly.body.token)]);
  expect(ls.code).toBe(0);

  const after = await api('GET', `/api/v1/repos/${owner.tenant}/${repo}/runs`, { token: owner.token });
  expect(after.body.runs.length).toBe(before.body.runs.length);
  await git(['reset', '-q', '--hard', 'HEAD~1'], work);
});

test('the sandbox is real: no route to the gateway, no admin token, no /root', async () => {
  const gatewayPort = new URL(platformInfo().gatewayUrl).port;
  const adminTokenPath = path.join(platformInfo().dataDir, 'admin.token');
  await writeFiles(work, {
    '.dotgit/pipeline.yml': `jobs:
  probe:
    steps:
      - name: network
        run: |
          if node -e "require('net').connect(${gatewayPort}, '127.0.0.1').on('connect', () => process.exit(0)).on('error', () => process.exit(1))"; then echo "NETWORK: reached gateway"; else echo "NETWORK: blocked"; fi
      - name: files
        run: |
          if [ -e "${adminTokenPath}" ]; then echo "TOKEN: visible"; else echo "TOKEN: absent"; fi
          if [ -e /root ] && [ -n "$(find /root -mindepth 1 -maxdepth 1 2>/dev/null | head -1)" ]; then echo "ROOT: visible"; else echo "ROOT: absent"; fi
          if [ -e "${platformInfo().dataDir}" ]; then echo "DATA: visible"; else echo "DATA: absent"; fi
`,
  });
  await git(['commit', '-qam', 'sandbox probe'], work);
  const push = await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work);
  const [id] = runIdsFrom(push.stderr);
  const run = await waitForRun(id, owner.token);
  expect(run.status).toBe('success');
  const net = await api('GET', `/api/v1/runs/${encodeURIComponent(id)}/logs?job=probe&step=network`, { token: owner.token });
  expect(net.text).toContain('NETWORK: blocked');
  const files = await api('GET', `/api/v1/runs/${encodeURIComponent(id)}/logs?job=probe&step=files`, { token: owner.token });
  expect(files.text).toContain('TOKEN: absent');
  expect(files.text).toContain('ROOT: absent');
  expect(files.text).toContain('DATA: absent');
});

test('cancelling a running step stops it and marks the run cancelled', async () => {
  await writeFiles(work, {
    // `after` waits for `slow` the whole time: its queued step says so (issue 17 item 8).
    '.dotgit/pipeline.yml': `jobs:\n  slow:\n    steps:\n      - name: wait\n        run: |\n          echo started\n          sleep 120\n          echo never\n  after:\n    needs: [slow]\n    steps:\n      - name: next\n        run: echo next\n`,
  });
  await git(['commit', '-qam', 'slow pipeline'], work);
  const push = await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work);
  const [id] = runIdsFrom(push.stderr);
  const path = `/api/v1/runs/${encodeURIComponent(id)}`;
  const deadline = Date.now() + 60_000;
  let running: any;
  while (Date.now() < deadline) {
    running = (await api('GET', path, { token: owner.token })).body;
    if (running.steps?.find((s: { job: string }) => s.job === 'slow')?.status === 'running') break;
    await new Promise((res) => setTimeout(res, 200));
  }
  // The upstream runs, so the run itself does not wait; its job with needs does, naming them.
  expect(running.pending).toBeNull();
  expect(running.steps.find((s: { job: string }) => s.job === 'after')).toMatchObject({ status: 'queued', pending: { reason: 'needs', message: 'waiting for needs: slow' } });
  const cancel = await api('POST', `${path}/cancel`, { token: owner.token });
  expect(cancel.status).toBe(202);
  const run = await waitForRun(id, owner.token, 60_000);
  expect(run.status).toBe('cancelled');
  expect(run.steps.find((s: { job: string }) => s.job === 'slow')).toEqual(expect.objectContaining({ name: 'wait', status: 'cancelled' }));
  const logs = await api('GET', `${path}/logs?job=slow&step=wait`, { token: owner.token });
  expect(logs.text).toContain('started');
  expect(logs.text).not.toContain('never');
});

test('refs too long for a run, oversized pipeline files and annotated tags are handled without blocking others', async () => {
  // A branch name past 255 characters starts no run, says so, and does not hold up later pushes.
  const longBranch = `${'a'.repeat(200)}/${'b'.repeat(100)}`;
  await writeFiles(work, { '.dotgit/pipeline.yml': 'jobs:\n  j:\n    steps:\n      - run: echo ok\n' });
  await git(['commit', '-qam', 'simple pipeline'], work);
  const long = await git(['push', cloneUrl(owner.tenant, repo, owner.token), `HEAD:refs/heads/${longBranch}`], work);
  expect(long.code).toBe(0);
  expect(long.stderr).toContain('ref names longer than 255 characters start no runs');
  expect(runIdsFrom(long.stderr)).toEqual([]);

  // A pipeline file over 256 KiB gets a run that fails with the reason; the server never reads it whole.
  await writeFiles(work, { '.dotgit/pipeline.yml': `# ${'x'.repeat(300 * 1024)}\njobs:\n  j:\n    steps:\n      - run: echo ok\n` });
  await git(['commit', '-qam', 'huge pipeline'], work);
  const huge = await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'HEAD:refs/heads/huge'], work);
  const [hugeRun] = runIdsFrom(huge.stderr);
  const failed = await waitForRun(hugeRun, owner.token);
  expect(failed.status).toBe('failure');
  expect(failed.message).toMatch(/pipeline\.yml is \d+ bytes; at most 262144 are allowed/);
  await git(['reset', '-q', '--hard', 'HEAD~1'], work);

  // An annotated tag runs the commit it points at, and `on.push.tags` decides.
  await writeFiles(work, { '.dotgit/pipeline.yml': 'on:\n  push:\n    tags: ["v*"]\njobs:\n  j:\n    steps:\n      - run: echo "tag run at $DOTGIT_COMMIT"\n' });
  await git(['commit', '-qam', 'tag pipeline'], work);
  await git(['tag', '-a', '-m', 'release', 'v1.0.0'], work);
  const tag = await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'v1.0.0'], work);
  const [tagRun] = runIdsFrom(tag.stderr);
  const run = await waitForRun(tagRun, owner.token);
  const commit = (await git(['rev-parse', 'HEAD'], work)).stdout.trim();
  expect(run.status).toBe('success');
  expect(run.ref).toBe('refs/tags/v1.0.0');
  expect(run.commit).toBe(commit);
});
