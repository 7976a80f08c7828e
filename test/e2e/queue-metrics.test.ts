import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { SANDBOX_QUEUE } from '../../core/run-types';
import { platformInfo } from '../harness/platform-info';
import { api, createTenantWithAdmin, uniqueName, waitForRun } from '../helpers/api-client';
import { cloneUrl, git, localRepo, runIdsFrom } from '../helpers/git';

// Issue 11's autoscaling signal on the real platform: work nobody can pick up makes the worker's
// `dotgit_task_queue_backlog` rise on /metrics; a worker that appears and drains it makes it fall.
// The platform's sandbox worker polls only activity tasks on the sandbox queue, so workflow tasks
// started there wait, as steps wait for sandbox hosts when there are too few.

const info = platformInfo();
const metricsUrl = `http://127.0.0.1:${info.workerPort}/metrics`;
const COUNT = 5;

/** The value of a series on the worker's /metrics, or undefined when the series is absent. */
async function series(name: string, labels: Record<string, string>): Promise<number | undefined> {
  const text = await (await fetch(metricsUrl)).text();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (want.length === 0 && line.startsWith(`${name} `)) return Number(line.slice(name.length + 1));
    if (!line.startsWith(`${name}{`)) continue;
    const labelText = line.slice(name.length + 1, line.indexOf('}'));
    if (want.every((w) => labelText.split(',').includes(w))) return Number(line.slice(line.indexOf('}') + 1).trim());
  }
  return undefined;
}

async function waitFor(what: string, ok: () => Promise<boolean>, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

const waiting = { queue: SANDBOX_QUEUE, type: 'workflow' };

test('the worker exports every shared queue, its busy slots, and a reachable Temporal', async () => {
  await waitFor('the first read of the backlogs', async () => (await series('dotgit_task_queue_stats_up', {})) === 1, 30_000);
  expect(await series('dotgit_task_queue_stats_up', {})).toBe(1);
  for (const queue of ['dotgit-orchestration', 'dotgit-sandbox']) {
    for (const type of ['workflow', 'activity']) {
      expect(await series('dotgit_task_queue_backlog', { queue, type })).toBeGreaterThanOrEqual(0);
      expect(await series('dotgit_task_queue_backlog_age_seconds', { queue, type })).toBeGreaterThanOrEqual(0);
    }
  }
  // The platform's own workers poll (seen from the first read after they started): orchestration, sandbox activities.
  for (const [queue, type] of [['dotgit-orchestration', 'workflow'], ['dotgit-orchestration', 'activity'], ['dotgit-sandbox', 'activity']]) {
    await waitFor(`pollers on ${queue} ${type}`, async () => ((await series('dotgit_task_queue_pollers', { queue, type })) ?? 0) >= 1, 30_000);
  }
  expect(await series('dotgit_worker_slots_used', { queue: 'dotgit-sandbox', kind: 'activity' })).toBeGreaterThanOrEqual(0);
  expect(await series('dotgit_worker_slots', { queue: 'dotgit-sandbox', kind: 'activity' })).toBeGreaterThanOrEqual(1);
  expect(await series('dotgit_worker_slots', { queue: 'dotgit-orchestration', kind: 'workflow' })).toBeGreaterThanOrEqual(1);
  // The sandbox worker runs no workflows: no workflow slots for it.
  expect(await series('dotgit_worker_slots', { queue: 'dotgit-sandbox', kind: 'workflow' })).toBeUndefined();
});

test('queued work nobody can take raises the backlog gauge; a worker that drains it lowers it again', async () => {
  const connection = await Connection.connect({ address: info.temporalAddress });
  const client = new Client({ connection, namespace: info.namespace });
  const ids = Array.from({ length: COUNT }, (_, i) => `queue-metrics-probe-${process.pid}-${Date.now()}-${i}`);
  try {
    const before = (await series('dotgit_task_queue_backlog', waiting)) ?? 0;
    for (const workflowId of ids) await client.workflow.start('queueMetricsProbe', { workflowId, taskQueue: SANDBOX_QUEUE });

    await waitFor(`dotgit_task_queue_backlog{queue="${SANDBOX_QUEUE}",type="workflow"} >= ${before + COUNT}`, async () => ((await series('dotgit_task_queue_backlog', waiting)) ?? 0) >= before + COUNT);
    // The oldest task has waited for a while by now.
    expect(await series('dotgit_task_queue_backlog_age_seconds', waiting)).toBeGreaterThan(0);

    // Scale-out: a worker for that work appears and takes it.
    const native = await NativeConnection.connect({ address: info.temporalAddress });
    try {
      const worker = await Worker.create({
        connection: native,
        namespace: info.namespace,
        taskQueue: SANDBOX_QUEUE,
        workflowsPath: path.join(__dirname, '..', 'helpers', 'probe-workflows.ts'),
      });
      await worker.runUntil(Promise.all(ids.map((id) => client.workflow.getHandle(id).result())));
    } finally {
      await native.close();
    }
    await waitFor(`dotgit_task_queue_backlog{queue="${SANDBOX_QUEUE}",type="workflow"} back to 0`, async () => (await series('dotgit_task_queue_backlog', waiting)) === 0);
    expect(await series('dotgit_task_queue_backlog_age_seconds', waiting)).toBe(0);
  } finally {
    for (const id of ids) await client.workflow.getHandle(id).terminate('test over').catch(() => undefined);
    await connection.close();
  }
}, 240_000);

test("a job holds its host's sandbox slot between and during its later (pinned) steps, so busy slots never read 0 mid-job", async () => {
  const owner = await createTenantWithAdmin();
  const name = uniqueName('slots');
  expect((await api('POST', '/api/v1/repos', { token: owner.token, body: { owner: owner.tenant, name, visibility: 'private' } })).status).toBe(201);
  const pipeline = 'jobs:\n  long:\n    steps:\n      - name: first\n        run: "true"\n      - name: second\n        run: sleep 6\n';
  const dir = await localRepo({ '.dotgit/pipeline.yml': pipeline });
  const busy = { queue: SANDBOX_QUEUE, kind: 'activity' };
  // Places other suites' jobs still hold on this shared platform (a run terminated without its
  // clean-up keeps its place until the host forgets it, 15 minutes idle): this job's is on top of them.
  const before = (await series('dotgit_worker_slots_used', busy)) ?? 0;
  const push = await git(['push', cloneUrl(owner.tenant, name, owner.token), 'main'], dir);
  expect(push.code).toBe(0);
  const [runId] = runIdsFrom(push.stderr);
  // While the second step runs (on the host's own queue, not the shared one), the shared queue's slot is still the job's.
  await waitFor('the second step running', async () => {
    const run = await api('GET', `/api/v1/runs/${encodeURIComponent(runId)}`, { token: owner.token });
    return run.body.steps?.some((st: { name: string; status: string }) => st.name === 'second' && st.status === 'running') ?? false;
  });
  expect(await series('dotgit_worker_slots_used', busy)).toBeGreaterThanOrEqual(1);
  expect((await waitForRun(runId, owner.token)).status).toBe('success');
  // The job's clean-up gives the place back.
  await waitFor(`the slot given back (${before} held before the push)`, async () => ((await series('dotgit_worker_slots_used', busy)) ?? 0) <= before, 30_000);
}, 180_000);
