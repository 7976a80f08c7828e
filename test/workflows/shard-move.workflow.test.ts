import path from 'node:path';
import { existsSync, promises as fs, readFileSync } from 'node:fs';
import { ApplicationFailure } from '@temporalio/common';
import { Worker } from '@temporalio/worker';
import { historyFromJSON, historyToJSON } from '@temporalio/common/lib/proto-utils';
import { useWorkflowTestEnv } from '../helpers/workflow-env';
import type { ShardMoveActivities } from '../../activities/shard-move-activities';
import type { ShardMoveInput } from '../../core/shard-moves';
import { ORCHESTRATION_QUEUE } from '../../core/run-types';
import { ROOT } from '../../infra/root';

// The shard move's order against a real Temporal dev server with recording fake activities:
// prepare, copy, catch-up passes until the delta is small, fence, final passes until nothing is
// left, verify, switch, (grace) delete the old copy and lift the fence; a verify mismatch rolls back
// and never switches. The recorded history is replayed against the current code. (The real
// activities against two real databases: test/integration/shard-move.test.ts.)

const WORKFLOWS = path.join(ROOT, 'workflows', 'index.ts');
const HISTORY_FILE = path.join(__dirname, 'histories', 'shard-move-v1.json');
const testEnv = useWorkflowTestEnv();

const input: ShardMoveInput = { shard: 3, from: 'global', to: 'db2', graceSeconds: 1, batchRows: 100 };
const table = (ok: boolean) => ({ table: 'runs', sourceRows: 5, targetRows: ok ? 5 : 4, sourceChecksum: '1', targetChecksum: ok ? '1' : '2', ok });

function fakes(calls: string[], o: { verifyOk?: boolean; switchCommittedThenFailed?: boolean } = {}): ShardMoveActivities {
  // Remaining changes after each pass: 500, then 150 (small: fence), then inside the fence 3, 0.
  const remaining = [500, 150, 3, 0];
  let pass = 0;
  return {
    prepareShardMove: async () => (calls.push('prepare'), { tables: ['repos', 'runs'] }),
    copyShard: async () => (calls.push('copy'), { rows: 1000, seconds: 2, resumedFrom: 0 }),
    catchUpShard: async (i) => {
      const left = remaining[Math.min(pass, remaining.length - 1)];
      calls.push(`pass after ${i.afterId}`);
      pass++;
      return { applied: left === 0 ? 0 : 10, cursor: String(pass * 10), remaining: left };
    },
    fenceShardWrites: async () => (calls.push('fence'), { fencedAt: 1_000 }),
    verifyShard: async () => (calls.push('verify'), { ok: o.verifyOk ?? true, tables: [table(o.verifyOk ?? true)] }),
    switchShard: async () => {
      calls.push('switch');
      if (o.switchCommittedThenFailed) throw ApplicationFailure.nonRetryable('the announcement failed after the commit');
      return { switchedAt: 1_250 };
    },
    rollBackShardMove: async () => (calls.push('roll back'), { rolledBack: !o.switchCommittedThenFailed }),
    dropShardCopy: async (i) => (calls.push(`drop ${i.database}`), { rows: 1000 }),
    liftShardFence: async () => void calls.push('lift'),
  };
}

async function run(activities: ShardMoveActivities, workflowId: string) {
  const worker = await Worker.create({ connection: testEnv().nativeConnection, taskQueue: ORCHESTRATION_QUEUE, workflowsPath: WORKFLOWS, activities });
  const handle = await testEnv().client.workflow.start('shardMove', { workflowId, taskQueue: ORCHESTRATION_QUEUE, args: [input] });
  const result = await worker.runUntil(handle.result().then((r) => ({ ok: true as const, r }), (err: Error) => ({ ok: false as const, err })));
  return { result, handle };
}

test('a shard move copies, catches up until the delta is small, fences, replays the rest, verifies, switches, and drops the old copy after the grace period; a history is recorded', async () => {
  const calls: string[] = [];
  const { result, handle } = await run(fakes(calls), 'shard-move:3');
  expect(calls).toEqual(['prepare', 'copy', 'pass after 0', 'pass after 10', 'fence', 'pass after 20', 'pass after 30', 'verify', 'switch', 'drop global', 'lift']);
  expect(result).toEqual({
    ok: true,
    r: expect.objectContaining({ shard: 3, from: 'global', to: 'db2', rowsCopied: 1000, rowsPerSecond: 500, catchUpPasses: 2, changesApplied: 30, writePauseMs: 250, sourceRemoved: true }),
  });
  // The phase is visible in the Temporal UI (search attribute DotgitStatus) and by query.
  const described = await handle.describe();
  expect(described.searchAttributes.DotgitStatus).toEqual(['done']);
  if (process.env.DOTGIT_RECORD_HISTORY === '1' || !existsSync(HISTORY_FILE)) {
    await fs.writeFile(HISTORY_FILE, historyToJSON(await handle.fetchHistory()));
  }
});

test('a verify mismatch rolls back (fence lifted, target copy dropped by the rollback) and never switches', async () => {
  const calls: string[] = [];
  const { result, handle } = await run(fakes(calls, { verifyOk: false }), 'shard-move:3-bad');
  expect(result.ok).toBe(false);
  const cause = (result as { err: { cause?: Error } }).err.cause;
  expect(cause?.message).toBe('moving shard 3 from global to db2 failed and was rolled back: verify failed: runs (5 rows on global, 4 on db2)');
  expect(calls).toEqual(['prepare', 'copy', 'pass after 0', 'pass after 10', 'fence', 'pass after 20', 'pass after 30', 'verify', 'roll back']);
  expect((await handle.describe()).searchAttributes.DotgitStatus).toEqual(['rolled-back']);
});

test('a switch that committed before its activity failed is not rolled back: the move carries on to the clean-up', async () => {
  const calls: string[] = [];
  const { result } = await run(fakes(calls, { switchCommittedThenFailed: true }), 'shard-move:3-committed');
  expect(result.ok).toBe(true);
  expect(calls.slice(-4)).toEqual(['switch', 'roll back', 'drop global', 'lift']);
});

test('the recorded shard move history replays against the current workflow code', async () => {
  const history = historyFromJSON(JSON.parse(readFileSync(HISTORY_FILE, 'utf8')));
  expect(history.events?.length).toBeGreaterThan(10);
  await Worker.runReplayHistory({ workflowsPath: WORKFLOWS }, history, 'shard-move-v1');
});
