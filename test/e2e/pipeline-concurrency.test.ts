import { Client, Connection } from '@temporalio/client';
import { concurrencyGroupWorkflowId } from '../../core/concurrency-types';
import { platformInfo } from '../harness/platform-info';
import { api, createPrivateRepo, createTenantWithAdmin, waitForRun, type TenantFixture } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom, writeFiles } from '../helpers/git';

// Issue 17 item 4 (and item 8's message for this wait), through real pushes, the API, Temporal and
// runsc: the runs of one concurrency group go one at a time in arrival order, a waiting run says how
// many runs are ahead of it, and with cancel-in-progress a newer run cancels the running one.

let owner: TenantFixture;

beforeAll(async () => {
  owner = await createTenantWithAdmin();
});

/** The file of every commit: the step sleeps as long as `.dotgit/wait` says (the first run long, so the others queue). */
const file = (concurrency: string) => `${concurrency}
jobs:
  work:
    steps:
      - name: hold
        run: sleep "$(cat .dotgit/wait)"
`;

const getRun = async (id: string) => (await api('GET', `/api/v1/runs/${encodeURIComponent(id)}`, { token: owner.token })).body;

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 300));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Commits a new wait time and pushes it: answers the push's run id. */
async function pushWait(work: string, repo: string, seconds: number): Promise<string> {
  await writeFiles(work, { '.dotgit/wait': `${seconds}\n` });
  await git(['commit', '-qam', `wait ${seconds}`], work);
  const pushed = await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work);
  expect(pushed.code).toBe(0);
  const [id] = runIdsFrom(pushed.stderr);
  if (!id) throw new Error(`no run in the push output: ${pushed.stderr}`);
  return id;
}

const stepRunning = (id: string) => async () => ((await getRun(id)).steps?.[0]?.status === 'running' ? true : undefined);

test('a FIFO of three: runs of one group go one at a time in arrival order, the waiting ones queued behind N runs', async () => {
  const repo = await createPrivateRepo(owner, 'concurrency-fifo');
  const work = await localRepo({ '.dotgit/pipeline.yml': file('concurrency: { group: "ci-${{ ref_name }}" }'), '.dotgit/wait': '0\n' });
  // The first run holds long enough to outlast two more pushes and their queueing on a loaded machine.
  const first = await pushWait(work, repo, 40);
  await until('the first run to be running', stepRunning(first));
  const second = await pushWait(work, repo, 2);
  await until('the second run to wait', async () => ((await getRun(second)).message ? true : undefined));
  const third = await pushWait(work, repo, 1);
  const waiting = await until('the third run to wait', async () => {
    const r = await getRun(third);
    return r.message ? r : undefined;
  });
  expect(waiting).toMatchObject({ status: 'queued', message: 'queued behind 2 runs in concurrency group ci-main' });
  // Issue 17 item 8: the same wait as a pending reason a client can act on.
  expect(waiting.pending).toEqual({ reason: 'concurrency', message: 'queued behind 2 runs in concurrency group ci-main' });
  expect(await getRun(second)).toMatchObject({ status: 'queued', message: 'queued behind 1 run in concurrency group ci-main' });
  expect((await getRun(first)).status).toBe('running');

  const runs = [await waitForRun(first, owner.token), await waitForRun(second, owner.token), await waitForRun(third, owner.token)];
  expect(runs.map((r) => [r.status, r.message])).toEqual([['success', null], ['success', null], ['success', null]]);
  // One at a time, in arrival order: each run's step started after the one before it ended.
  for (let i = 1; i < runs.length; i++) {
    expect(Date.parse(runs[i].steps[0].startedAt)).toBeGreaterThanOrEqual(Date.parse(runs[i - 1].steps[0].finishedAt));
  }
}, 300_000);

test('cancel-in-progress: a newer run of the group cancels the running one, then runs', async () => {
  const repo = await createPrivateRepo(owner, 'concurrency-cancel');
  const work = await localRepo({ '.dotgit/pipeline.yml': file('concurrency:\n  group: "deploy-${{ ref }}"\n  cancel-in-progress: true'), '.dotgit/wait': '0\n' });
  const older = await pushWait(work, repo, 120);
  await until('the older run to be running', stepRunning(older));
  const newer = await pushWait(work, repo, 1);
  expect(await waitForRun(older, owner.token)).toMatchObject({ status: 'cancelled', steps: [{ status: 'cancelled' }] });
  const done = await waitForRun(newer, owner.token);
  expect(done).toMatchObject({ status: 'success', steps: [{ status: 'success' }] });
}, 300_000);

test('a group naming what it may not fails the run with the line', async () => {
  const repo = await createPrivateRepo(owner, 'concurrency-bad');
  const work = await localRepo({ '.dotgit/pipeline.yml': file('concurrency:\n  group: "x-${{ github.sha }}"'), '.dotgit/wait': '0\n' });
  const pushed = await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work);
  const [id] = runIdsFrom(pushed.stderr);
  const run = await waitForRun(id, owner.token);
  expect(run.status).toBe('failure');
  expect(run.message).toMatch(/^\.dotgit\/pipeline\.yml:2:10: concurrency\.group: \$\{\{ github\.sha \}\}: a group may use/);
}, 120_000);

test('a matrix job whose group names a matrix key queues each instance in a group of its own (ADR 0044)', async () => {
  const repo = await createPrivateRepo(owner, 'concurrency-matrix');
  const work = await localRepo({ '.dotgit/pipeline.yml': 'jobs:\n  ship:\n    matrix: { env: [a, b] }\n    concurrency: "ship-${{ matrix.env }}"\n    steps:\n      - name: s\n        run: "true"\n' });
  const pushed = await git(['push', cloneUrl(owner.tenant, repo, owner.token), 'main'], work);
  const run = await waitForRun(runIdsFrom(pushed.stderr)[0], owner.token);
  expect(run.status).toBe('success');
  // Each instance's group is a concurrencyGroup workflow of its own, named with the instance's value.
  const info = platformInfo();
  const connection = await Connection.connect({ address: info.temporalAddress });
  try {
    const client = new Client({ connection, namespace: info.namespace });
    for (const env of ['a', 'b']) expect((await client.workflow.getHandle(concurrencyGroupWorkflowId(owner.tenant, repo, `ship-${env}`)).describe()).type).toBe('concurrencyGroup');
  } finally {
    await connection.close();
  }
}, 120_000);
