import path from 'node:path';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import { ApplicationFailure } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import { historyFromJSON, historyToJSON } from '@temporalio/common/lib/proto-utils';
import { useWorkflowTestEnv } from '../helpers/workflow-env';
import type { MoveActivities } from '../../activities/move-activities';
import type { MoveInput } from '../../core/repo-moves';
import { ORCHESTRATION_QUEUE } from '../../core/run-types';
import { ROOT } from '../../infra/root';

// The move workflow's order against a real Temporal dev server with recording fake activities:
// copy, fence, catch up, switch, then (after the grace period) the source's copy is dropped; a
// failure before the switch lifts the fence, drops the target's copy and fails the move saying why,
// never switching. The recorded history is replayed against the current code.

const WORKFLOWS = path.join(ROOT, 'workflows', 'index.ts');
const HISTORY_FILE = path.join(__dirname, 'histories', 'move-v1.json');
const testEnv = useWorkflowTestEnv();

const input: MoveInput = { tenant: 'acme', repo: 'app', repoId: 7, from: 'n1', to: 'n2', graceSeconds: 1 };
const REFS = { 'refs/heads/main': 'a'.repeat(40) };

function fakes(calls: string[], o: { failCatchUp?: string } = {}): MoveActivities {
  return {
    copyRepository: async (i) => (calls.push(`copy ${i.from}->${i.to}`), { refs: 1 }),
    fenceWrites: async () => (calls.push('fence'), { refs: REFS }),
    catchUp: async (i) => {
      calls.push(`catch up ${Object.keys(i.sourceRefs).join(',')}`);
      if (o.failCatchUp) throw ApplicationFailure.nonRetryable(o.failCatchUp, 'MoveVerifyFailed');
      return { refs: 1 };
    },
    switchNode: async () => void calls.push('switch'),
    unfence: async () => void calls.push('unfence'),
    dropCopy: async (i) => void calls.push(`drop ${i.node}`),
  };
}

async function run(activities: MoveActivities, workflowId: string) {
  const worker = await Worker.create({ connection: testEnv().nativeConnection, taskQueue: ORCHESTRATION_QUEUE, workflowsPath: WORKFLOWS, activities });
  const handle = await testEnv().client.workflow.start('moveRepository', { workflowId, taskQueue: ORCHESTRATION_QUEUE, args: [input] });
  const result = await worker.runUntil(handle.result().then((r) => ({ ok: true as const, r }), (err: Error) => ({ ok: false as const, err })));
  return { result, handle };
}

test('a move copies, fences, catches up against the fenced refs, switches, and drops the source copy after the grace period; a history is recorded', async () => {
  const calls: string[] = [];
  const { result, handle } = await run(fakes(calls), 'move:acme:app');
  expect(result).toEqual({ ok: true, r: { from: 'n1', to: 'n2', refs: 1, sourceRemoved: true } });
  expect(calls).toEqual(['copy n1->n2', 'fence', 'catch up refs/heads/main', 'switch', 'drop n1']);
  if (process.env.DOTGIT_RECORD_HISTORY === '1' || !existsSync(HISTORY_FILE)) {
    await fs.writeFile(HISTORY_FILE, historyToJSON(await handle.fetchHistory()));
  }
});

test('a failure before the switch lifts the fence, drops the target copy, never switches, and fails saying why', async () => {
  const calls: string[] = [];
  const { result } = await run(fakes(calls, { failCatchUp: 'refs on n2 differ' }), 'move:acme:app-fail');
  expect(result.ok).toBe(false);
  const cause = (result as { err: { cause?: Error } }).err.cause;
  expect(cause?.message).toBe('moving acme/app from n1 to n2 failed: refs on n2 differ');
  expect(calls).toEqual(['copy n1->n2', 'fence', 'catch up refs/heads/main', 'unfence', 'drop n2']);
});

test('the recorded move history replays against the current workflow code', async () => {
  const history = historyFromJSON(JSON.parse(readFileSync(HISTORY_FILE, 'utf8')));
  expect(history.events?.length).toBeGreaterThan(10);
  await Worker.runReplayHistory({ workflowsPath: WORKFLOWS }, history, 'move-v1');
});
