import path from 'node:path';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import { useWorkflowTestEnv } from '../helpers/workflow-env';
import { ApplicationFailure } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import { historyFromJSON, historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { MaintenanceActivities } from '../../activities/maintenance-activities';
import type { HousekeepingActivities } from '../../activities/housekeeping-activities';
import { ORCHESTRATION_QUEUE, storageQueue, type RepoTarget } from '../../core/run-types';
import { ROOT } from '../../infra/root';

// The hourly maintenance sweep's logic against a real Temporal dev server with recording fake
// activities: every changed repository is repacked by a child workflow, one failing repository
// does not stop the rest; housekeeping (old rows, restore copies, orphaned sandbox state) runs
// beside it, and one failing part of it stops neither the others nor the repacks. The recorded
// histories (v0: before housekeeping, v1: with it) replay against the current code.

const WORKFLOWS = path.join(ROOT, 'workflows', 'index.ts');
const HISTORIES = path.join(__dirname, 'histories');
const HISTORY_FILE = path.join(HISTORIES, 'maintenance-v1.json');
const testEnv = useWorkflowTestEnv();

const targets: RepoTarget[] = [
  { tenantId: 1, tenant: 'acme', repoId: 10, repo: 'web' },
  { tenantId: 1, tenant: 'acme', repoId: 11, repo: 'broken' },
  { tenantId: 2, tenant: 'beta', repoId: 12, repo: 'api' },
];

function fakes(calls: string[], o: { failRestoreCopies?: boolean } = {}): MaintenanceActivities & HousekeepingActivities {
  const housekeeping: HousekeepingActivities = {
    pruneRows: async () => (calls.push('prune rows'), { push_outbox: 2, webhook_outbox: 0, replication_outbox: 1, run_request_outbox: 0, webhook_deliveries: 5, idempotency_keys: 3 }),
    pruneRestoreCopies: async () => {
      calls.push('prune restore copies');
      if (o.failRestoreCopies) throw ApplicationFailure.nonRetryable('EACCES: permission denied', 'Error');
      return { removed: ['drill-20240101T000000000Z-abcd'], kept: 1 };
    },
    pruneSandboxState: async () => (calls.push('prune sandbox state'), { removed: 2 }),
  };
  const fake: Partial<MaintenanceActivities> = {
    ...housekeeping,
    listReposNeedingMaintenance: async (a) => (calls.push(`list ${a.limit}`), targets),
    maintainRepo: async (t) => {
      calls.push(`repack ${t.tenant}/${t.repo}`);
      if (t.repo === 'broken') throw ApplicationFailure.nonRetryable('git repack failed', 'MaintenanceFailedError');
      return { pushesCovered: t.repoId };
    },
  };
  return fake as MaintenanceActivities & HousekeepingActivities;
}

async function run(activities: MaintenanceActivities & HousekeepingActivities, workflowId: string) {
  const env = testEnv();
  const worker = await Worker.create({ connection: env.nativeConnection, taskQueue: ORCHESTRATION_QUEUE, workflowsPath: WORKFLOWS, activities });
  const handle = await env.client.workflow.start('maintenanceSweep', { workflowId, taskQueue: ORCHESTRATION_QUEUE, args: [] });
  const result = await worker.runUntil(handle.result());
  return { result, handle };
}

const repacks = ['repack acme/web', 'repack acme/broken', 'repack beta/api'];
const housekeepingCalls = ['prune rows', 'prune restore copies', 'prune sandbox state'];

test('the sweep repacks every changed repository, past one that fails, and housekeeps; a history is recorded', async () => {
  const calls: string[] = [];
  const { result, handle } = await run(fakes(calls), 'wf-maintenance-sweep');
  expect(result).toEqual({
    repos: 3,
    housekeeping: {
      rows: { push_outbox: 2, webhook_outbox: 0, replication_outbox: 1, run_request_outbox: 0, webhook_deliveries: 5, idempotency_keys: 3 },
      restoreCopies: { removed: ['drill-20240101T000000000Z-abcd'], kept: 1 },
      sandbox: { removed: 2 },
      failed: [],
    },
  });
  // Housekeeping runs beside the repacks (they are independent); repacks stay in order.
  expect(calls.filter((c) => c.startsWith('repack'))).toEqual(repacks);
  expect([...calls].sort()).toEqual(['list 500', ...repacks, ...housekeepingCalls].sort());
  if (process.env.DOTGIT_RECORD_HISTORY === '1' || !existsSync(HISTORY_FILE)) {
    await fs.writeFile(HISTORY_FILE, historyToJSON(await handle.fetchHistory()));
  }
});

test('a housekeeping part that fails is named in the result and stops neither the other parts nor the repacks', async () => {
  const calls: string[] = [];
  const { result } = await run(fakes(calls, { failRestoreCopies: true }), 'wf-maintenance-sweep-failing-part');
  expect(result.repos).toBe(3);
  expect(result.housekeeping?.failed).toEqual(['restoreCopies: EACCES: permission denied']);
  expect(result.housekeeping?.rows?.push_outbox).toBe(2);
  expect(result.housekeeping?.sandbox).toEqual({ removed: 2 });
  expect(calls.filter((c) => c.startsWith('repack'))).toEqual(repacks);
  expect(calls).toEqual(expect.arrayContaining(housekeepingCalls));
});

test.each(['maintenance-v0.json', 'maintenance-v1.json'])('the recorded history %s replays against the current workflow code', async (file) => {
  const history = historyFromJSON(JSON.parse(readFileSync(path.join(HISTORIES, file), 'utf8')));
  expect(history.events?.length).toBeGreaterThan(10);
  await Worker.runReplayHistory({ workflowsPath: WORKFLOWS }, history, file);
});

// ADR 0014: a target that names its storage node is repacked by the worker beside that node
// (queue dotgit-storage@<node>), never by the orchestration worker, which has no such disk.
const NODE_HISTORY_FILE = path.join(HISTORIES, 'maintenance-node-v2.json');

test("a repository's repack runs on its storage node's queue; a history is recorded", async () => {
  const env = testEnv();
  const calls: string[] = [];
  const on = (where: string) => ({ maintainRepo: async (t: RepoTarget) => (calls.push(`${where} repack ${t.tenant}/${t.repo}`), { pushesCovered: 4 }) }) as unknown as MaintenanceActivities;
  const orchestration = await Worker.create({ connection: env.nativeConnection, taskQueue: ORCHESTRATION_QUEUE, workflowsPath: WORKFLOWS, activities: on('orchestration') });
  const node = await Worker.create({ connection: env.nativeConnection, taskQueue: storageQueue('n2'), activities: on('n2') });
  const target: RepoTarget = { tenantId: 1, tenant: 'acme', repoId: 10, repo: 'web', node: 'n2' };
  const handle = await env.client.workflow.start('repoMaintenance', { workflowId: 'wf-maintenance-on-node', taskQueue: ORCHESTRATION_QUEUE, args: [target] });
  const result = await orchestration.runUntil(node.runUntil(handle.result()));
  expect(result).toEqual({ pushesCovered: 4 });
  expect(calls).toEqual(['n2 repack acme/web']);
  if (process.env.DOTGIT_RECORD_HISTORY === '1' || !existsSync(NODE_HISTORY_FILE)) {
    await fs.writeFile(NODE_HISTORY_FILE, historyToJSON(await handle.fetchHistory()));
  }
  // A target from before nodes still goes to the orchestration queue.
  calls.length = 0;
  const old = await env.client.workflow.start('repoMaintenance', { workflowId: 'wf-maintenance-no-node', taskQueue: ORCHESTRATION_QUEUE, args: [{ ...target, node: undefined }] });
  const again = await Worker.create({ connection: env.nativeConnection, taskQueue: ORCHESTRATION_QUEUE, workflowsPath: WORKFLOWS, activities: on('orchestration') });
  await again.runUntil(old.result());
  expect(calls).toEqual(['orchestration repack acme/web']);
});

test('the recorded history maintenance-node-v2.json replays against the current workflow code', async () => {
  const history = historyFromJSON(JSON.parse(readFileSync(NODE_HISTORY_FILE, 'utf8')));
  expect(history.events?.length).toBeGreaterThan(5);
  await Worker.runReplayHistory({ workflowsPath: WORKFLOWS }, history, 'maintenance-node-v2');
});
