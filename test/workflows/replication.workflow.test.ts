import path from 'node:path';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startWorkflowTestEnv } from '../helpers/workflow-env';
import { ApplicationFailure } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import { historyFromJSON, historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { ReplicationActivities } from '../../activities/replication-activities';
import { PUSHED_SIGNAL, replicationWorkflowId, type ReplicationInput } from '../../core/replication-types';
import { ORCHESTRATION_QUEUE, storageQueue } from '../../core/run-types';
import { ROOT } from '../../infra/root';

// The replication workflow's logic against a real Temporal dev server with recording fake
// activities: pushes signalled while a round runs coalesce, a zone that fails is retried with
// backoff (and keeps the time of the oldest push it lacks) while the others are done, the workflow
// ends when idle. The recorded history replays against the current code.

const WORKFLOWS = path.join(ROOT, 'workflows', 'index.ts');
const HISTORY_FILE = path.join(__dirname, 'histories', 'replication-v1.json');
let env: TestWorkflowEnvironment;

beforeAll(async () => {
  env = await startWorkflowTestEnv();
}, 120_000);

afterAll(async () => {
  await env?.teardown();
});

interface Call {
  zone: string;
  pushedAt: number;
  ok: boolean;
}

function fakes(calls: Call[], o: { failFirst?: Record<string, number>; slowMs?: number; started?: () => void } = {}): ReplicationActivities {
  const left = { ...o.failFirst };
  const fake: Partial<ReplicationActivities> = {
    replicaZones: async () => ['a', 'b'],
    syncReplica: async (args) => {
      o.started?.();
      await new Promise((r) => setTimeout(r, o.slowMs ?? 50));
      // Each activity attempt counts; the workflow's activity options retry 3 times before the workflow backs off.
      if ((left[args.zone] ?? 0) > 0) {
        left[args.zone]--;
        calls.push({ zone: args.zone, pushedAt: args.pushedAt, ok: false });
        throw ApplicationFailure.retryable(`zone ${args.zone} is not available`, 'ZoneUnavailableError');
      }
      calls.push({ zone: args.zone, pushedAt: args.pushedAt, ok: true });
      return { zone: args.zone, synced: true, lagSeconds: 0.1 };
    },
  };
  return fake as ReplicationActivities;
}

const target: ReplicationInput = { tenantId: 1, tenant: 't', repoId: 7, repo: 'web', idleMs: 3000 };

async function signalPush(pushedAt: number) {
  return env.client.workflow.signalWithStart('replication', {
    workflowId: replicationWorkflowId('t', 'web'),
    taskQueue: ORCHESTRATION_QUEUE,
    args: [target],
    signal: PUSHED_SIGNAL,
    signalArgs: [{ pushedAt }],
  });
}

test('pushes coalesce, a failing zone is retried with backoff until it catches up, the workflow ends when idle; a history is recorded', async () => {
  const calls: Call[] = [];
  // Zone a fails 4 attempts: the first round (3 attempts) fails, the retry round's first attempt fails, then it succeeds.
  let roundStarted!: () => void;
  const firstRound = new Promise<void>((r) => (roundStarted = r));
  const worker = await Worker.create({ connection: env.nativeConnection, taskQueue: ORCHESTRATION_QUEUE, workflowsPath: WORKFLOWS, activities: fakes(calls, { failFirst: { a: 4 }, slowMs: 300, started: () => roundStarted() }) });
  const result = await worker.runUntil(async () => {
    const handle = await signalPush(1000);
    // Two more pushes while the first round runs: one more round covers both.
    await firstRound;
    await signalPush(2000);
    await signalPush(3000);
    return { handle, value: await handle.result() };
  });
  const ok = calls.filter((c) => c.ok);
  // Zone b: first round with the first push, then one round for the two coalesced pushes.
  expect(ok.filter((c) => c.zone === 'b').map((c) => c.pushedAt)).toEqual([1000, 2000]);
  // Zone a caught up once, lag counted from the oldest push it lacked.
  expect(ok.filter((c) => c.zone === 'a').map((c) => c.pushedAt)).toEqual([1000]);
  expect(calls.filter((c) => c.zone === 'a' && !c.ok)).toHaveLength(4);
  expect(result.value.rounds).toBeGreaterThanOrEqual(2);
  if (process.env.DOTGIT_RECORD_HISTORY === '1' || !existsSync(HISTORY_FILE)) {
    await fs.writeFile(HISTORY_FILE, historyToJSON(await result.handle.fetchHistory()));
  }
});

test('a new push after the workflow ended starts a new one', async () => {
  const calls: Call[] = [];
  const worker = await Worker.create({ connection: env.nativeConnection, taskQueue: ORCHESTRATION_QUEUE, workflowsPath: WORKFLOWS, activities: fakes(calls) });
  await worker.runUntil(async () => {
    await (await signalPush(5000)).result();
    await (await signalPush(6000)).result();
  });
  expect(calls.map((c) => `${c.zone}@${c.pushedAt}`).sort()).toEqual(['a@5000', 'a@6000', 'b@5000', 'b@6000']);
});

test('the recorded replication history replays against the current workflow code', async () => {
  const history = historyFromJSON(JSON.parse(readFileSync(HISTORY_FILE, 'utf8')));
  expect(history.events?.length).toBeGreaterThan(10);
  await Worker.runReplayHistory({ workflowsPath: WORKFLOWS }, history, 'replication-v1');
});

// ADR 0014: a repository whose target names its storage node is synced by the worker beside that
// node (queue dotgit-storage@<node>), which holds the primary copy; the orchestration worker runs
// only the workflow.
const NODE_HISTORY_FILE = path.join(__dirname, 'histories', 'replication-node-v2.json');

test("a repository's replica syncs run on its storage node's queue; a history is recorded", async () => {
  const calls: Call[] = [];
  const orchestration = await Worker.create({ connection: env.nativeConnection, taskQueue: ORCHESTRATION_QUEUE, workflowsPath: WORKFLOWS, activities: {} });
  const node = await Worker.create({ connection: env.nativeConnection, taskQueue: storageQueue('n2'), activities: fakes(calls) });
  const onNode: ReplicationInput = { ...target, repo: 'on-node', node: 'n2' };
  const handle = await env.client.workflow.signalWithStart('replication', {
    workflowId: replicationWorkflowId('t', 'on-node'),
    taskQueue: ORCHESTRATION_QUEUE,
    args: [onNode],
    signal: PUSHED_SIGNAL,
    signalArgs: [{ pushedAt: 7000 }],
  });
  await orchestration.runUntil(node.runUntil(handle.result()));
  expect(calls.map((c) => `${c.zone}@${c.pushedAt}`).sort()).toEqual(['a@7000', 'b@7000']);
  if (process.env.DOTGIT_RECORD_HISTORY === '1' || !existsSync(NODE_HISTORY_FILE)) {
    await fs.writeFile(NODE_HISTORY_FILE, historyToJSON(await handle.fetchHistory()));
  }
});

test('the recorded history replication-node-v2.json replays against the current workflow code', async () => {
  const history = historyFromJSON(JSON.parse(readFileSync(NODE_HISTORY_FILE, 'utf8')));
  expect(history.events?.length).toBeGreaterThan(10);
  await Worker.runReplayHistory({ workflowsPath: WORKFLOWS }, history, 'replication-node-v2');
});

// ADR 0014: the scheduled reconciliation compares each storage node's repositories beside that
// node (its queue); a down node is named in `failed`, never waited for.
const RECONCILE_HISTORY_FILE = path.join(__dirname, 'histories', 'reconcile-node-v1.json');

test("the reconciliation runs on each storage node's queue and adds up their results; a history is recorded", async () => {
  const calls: string[] = [];
  const orchestration = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: ORCHESTRATION_QUEUE,
    workflowsPath: WORKFLOWS,
    activities: {
      reconcileNodes: async () => ({ up: ['n1', 'n2'], down: ['n3'] }),
      reconcileReplicas: async () => {
        throw ApplicationFailure.nonRetryable('the orchestration worker must not read repositories');
      },
    },
  });
  const node = (id: string) =>
    Worker.create({
      connection: env.nativeConnection,
      taskQueue: storageQueue(id),
      activities: {
        reconcileReplicas: async (a: { node?: string }) => {
          calls.push(`${id} node=${a.node}`);
          return { repos: id === 'n1' ? 2 : 3, zones: 1, repaired: [`a t/${id}`], failed: id === 'n2' ? ['a t/x: zone down'] : [] };
        },
      },
    });
  const [n1, n2] = [await node('n1'), await node('n2')];
  const handle = await env.client.workflow.start('reconcileReplicas', { workflowId: 'wf-reconcile-nodes', taskQueue: ORCHESTRATION_QUEUE, args: [] });
  const result = await orchestration.runUntil(n1.runUntil(n2.runUntil(handle.result())));
  expect(calls.sort()).toEqual(['n1 node=n1', 'n2 node=n2']);
  expect(result).toEqual({ repos: 5, zones: 1, repaired: ['a t/n1', 'a t/n2'], failed: ['storage node n3 is down: its repositories were not compared', 'a t/x: zone down'] });
  if (process.env.DOTGIT_RECORD_HISTORY === '1' || !existsSync(RECONCILE_HISTORY_FILE)) {
    await fs.writeFile(RECONCILE_HISTORY_FILE, historyToJSON(await handle.fetchHistory()));
  }
});

test('the recorded history reconcile-node-v1.json replays against the current workflow code', async () => {
  const history = historyFromJSON(JSON.parse(readFileSync(RECONCILE_HISTORY_FILE, 'utf8')));
  expect(history.events?.length).toBeGreaterThan(10);
  await Worker.runReplayHistory({ workflowsPath: WORKFLOWS }, history, 'reconcile-node-v1');
});
