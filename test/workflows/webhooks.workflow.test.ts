import path from 'node:path';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import { Worker } from '@temporalio/worker';
import { historyFromJSON, historyToJSON } from '@temporalio/common/lib/proto-utils';
import type { WebhookActivities } from '../../activities/webhook-activities';
import { ORCHESTRATION_QUEUE, storageQueue } from '../../core/run-types';
import type { WebhookDispatchInput } from '../../core/webhook-payloads';
import { ROOT } from '../../infra/root';
import { useWorkflowTestEnv } from '../helpers/workflow-env';

// The webhook dispatch workflow against a real Temporal dev server with recording fake activities:
// events go out in order, each to every hook that wants it. A push's dispatch names the storage
// node holding the repository, so its payload (commits, read from the repository) is planned by
// the worker beside that node (ADR 0014); deliveries stay on the orchestration queue. Histories
// with and without a node are recorded and replay against the current code.

const WORKFLOWS = path.join(ROOT, 'workflows', 'index.ts');
const HISTORIES = path.join(__dirname, 'histories');
const testEnv = useWorkflowTestEnv();

const push = (after: string) => ({ event: 'push' as const, ref: 'refs/heads/main', before: '0'.repeat(40), after, pusher: 'alice' });

function fakes(where: string, calls: string[]): WebhookActivities {
  const fake: Partial<WebhookActivities> = {
    planWebhookEvent: async (a) => {
      calls.push(`${where} plan ${a.event.event === 'push' ? a.event.after.slice(0, 4) : a.event.event}`);
      return { event: 'push', hookIds: [1, 2], body: `{"after":"${a.event.event === 'push' ? a.event.after : ''}"}` } as Awaited<ReturnType<WebhookActivities['planWebhookEvent']>>;
    },
    deliverWebhook: async (a) => (calls.push(`${where} deliver ${a.hookId}`), { status: 200, outcome: 'success' as const }),
  };
  return fake as WebhookActivities;
}

async function dispatch(input: WebhookDispatchInput, workflowId: string, historyFile: string) {
  const env = testEnv();
  const calls: string[] = [];
  const orchestration = await Worker.create({ connection: env.nativeConnection, taskQueue: ORCHESTRATION_QUEUE, workflowsPath: WORKFLOWS, activities: fakes('orchestration', calls) });
  const node = await Worker.create({ connection: env.nativeConnection, taskQueue: storageQueue('n2'), activities: fakes('n2', calls) });
  const handle = await env.client.workflow.start('webhookDispatch', { workflowId, taskQueue: ORCHESTRATION_QUEUE, args: [input] });
  const result = await orchestration.runUntil(node.runUntil(handle.result()));
  const file = path.join(HISTORIES, historyFile);
  if (process.env.DOTGIT_RECORD_HISTORY === '1' || !existsSync(file)) await fs.writeFile(file, historyToJSON(await handle.fetchHistory()));
  return { result, calls };
}

test("a push's dispatch names its node: payloads are planned there, in order; deliveries go out from the orchestration queue; a history is recorded", async () => {
  const { result, calls } = await dispatch({ tenantId: 1, repoId: 7, node: 'n2', events: [push('aaaa'.repeat(10)), push('bbbb'.repeat(10))] }, 'wf-webhooks-on-node', 'webhook-dispatch-node-v1.json');
  expect(result).toEqual({ delivered: 4, failed: 0 });
  expect(calls.filter((c) => c.includes('plan'))).toEqual(['n2 plan aaaa', 'n2 plan bbbb']);
  expect(calls.filter((c) => c.includes('deliver')).sort()).toEqual(['orchestration deliver 1', 'orchestration deliver 1', 'orchestration deliver 2', 'orchestration deliver 2']);
});

test('a dispatch without a node (events of runs and deploys, inputs from before nodes) plans on the orchestration queue; a history is recorded', async () => {
  const { result, calls } = await dispatch({ tenantId: 1, repoId: 7, events: [push('cccc'.repeat(10))] }, 'wf-webhooks-no-node', 'webhook-dispatch-v1.json');
  expect(result).toEqual({ delivered: 2, failed: 0 });
  expect(calls.filter((c) => c.includes('plan'))).toEqual(['orchestration plan cccc']);
});

test.each(['webhook-dispatch-v1.json', 'webhook-dispatch-node-v1.json'])('the recorded history %s replays against the current workflow code', async (file) => {
  const history = historyFromJSON(JSON.parse(readFileSync(path.join(HISTORIES, file), 'utf8')));
  expect(history.events?.length).toBeGreaterThan(10);
  await Worker.runReplayHistory({ workflowsPath: WORKFLOWS }, history, file);
});
