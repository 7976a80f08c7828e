import path from 'node:path';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startWorkflowTestEnv } from '../helpers/workflow-env';
import { ApplicationFailure } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import { historyFromJSON, historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { MaintenanceActivities } from '../../activities/maintenance-activities';
import { ORCHESTRATION_QUEUE, type RepoTarget } from '../../core/run-types';
import { ROOT } from '../../infra/root';

// The hourly maintenance sweep's logic against a real Temporal dev server with recording fake
// activities: every changed repository is repacked by a child workflow, one failing repository
// does not stop the rest. The recorded histories (v0: before housekeeping) replay against the
// current code, so changes stay deterministic.

const WORKFLOWS = path.join(ROOT, 'workflows', 'index.ts');
const HISTORIES = path.join(__dirname, 'histories');
const HISTORY_FILE = path.join(HISTORIES, 'maintenance-v0.json');
let env: TestWorkflowEnvironment;

beforeAll(async () => {
  env = await startWorkflowTestEnv();
}, 120_000);

afterAll(async () => {
  await env?.teardown();
});

const targets: RepoTarget[] = [
  { tenantId: 1, tenant: 'acme', repoId: 10, repo: 'web' },
  { tenantId: 1, tenant: 'acme', repoId: 11, repo: 'broken' },
  { tenantId: 2, tenant: 'beta', repoId: 12, repo: 'api' },
];

function fakes(calls: string[]): MaintenanceActivities {
  const fake: Partial<MaintenanceActivities> = {
    listReposNeedingMaintenance: async (a) => (calls.push(`list ${a.limit}`), targets),
    maintainRepo: async (t) => {
      calls.push(`repack ${t.tenant}/${t.repo}`);
      if (t.repo === 'broken') throw ApplicationFailure.nonRetryable('git repack failed', 'MaintenanceFailedError');
      return { pushesCovered: t.repoId };
    },
  };
  return fake as MaintenanceActivities;
}

async function run(activities: MaintenanceActivities, workflowId: string) {
  const worker = await Worker.create({ connection: env.nativeConnection, taskQueue: ORCHESTRATION_QUEUE, workflowsPath: WORKFLOWS, activities });
  const handle = await env.client.workflow.start('maintenanceSweep', { workflowId, taskQueue: ORCHESTRATION_QUEUE, args: [] });
  const result = await worker.runUntil(handle.result());
  return { result, handle };
}

test('the sweep repacks every changed repository, past one that fails; a history is recorded', async () => {
  const calls: string[] = [];
  const { result, handle } = await run(fakes(calls), 'wf-maintenance-sweep');
  expect(result).toMatchObject({ repos: 3 });
  expect(calls).toEqual(['list 500', 'repack acme/web', 'repack acme/broken', 'repack beta/api']);
  if (process.env.DOTGIT_RECORD_HISTORY === '1' || !existsSync(HISTORY_FILE)) {
    await fs.writeFile(HISTORY_FILE, historyToJSON(await handle.fetchHistory()));
  }
});

test.each(['maintenance-v0.json'])('the recorded history %s replays against the current workflow code', async (file) => {
  const history = historyFromJSON(JSON.parse(readFileSync(path.join(HISTORIES, file), 'utf8')));
  expect(history.events?.length).toBeGreaterThan(10);
  await Worker.runReplayHistory({ workflowsPath: WORKFLOWS }, history, file);
});
