import { ActivityFailure, ApplicationFailure, CancellationScope, defineQuery, proxyActivities, setHandler, sleep, upsertSearchAttributes } from '@temporalio/workflow';
import type { ShardMoveActivities } from '../activities/shard-move-activities';
import { ORCHESTRATION_QUEUE } from '../core/run-types';
import { SEARCH_ATTRIBUTES } from '../core/search-attributes';
import type { ShardMoveInput, ShardMovePhase, ShardMoveResult, ShardTableCheck } from '../core/shard-moves';

// The bulk copy and deletes of a large shard take long: they heartbeat, so a killed worker is
// noticed within a minute and the retry continues from the last heartbeat.
const bulk = proxyActivities<ShardMoveActivities>({
  taskQueue: ORCHESTRATION_QUEUE,
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 10 },
});
// The steps inside the fence are short; retried quickly (each is safe to run again).
const quick = proxyActivities<ShardMoveActivities>({
  taskQueue: ORCHESTRATION_QUEUE,
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '200 milliseconds', maximumInterval: '5 seconds', maximumAttempts: 10 },
});

/** The move's phase and figures so far (the Temporal UI's Queries tab, `dotgit` tooling). */
export const shardMovePhaseQuery = defineQuery<{ phase: ShardMovePhase; rowsCopied: number; changesApplied: number; catchUpPasses: number }>('shardMovePhase');

/** Catch-up passes stop when fewer changes than this are left (the rest is replayed inside the fence). */
const SMALL_DELTA = 200;
const MAX_PASSES = 20;

function reason(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}

/**
 * Moves logical shard `input.shard` from database `from` to `to` while the platform serves
 * (`shard-move:<shard>`, ADR 0026): prepare (guard triggers, change logging), bulk copy in foreign-key
 * order, catch-up passes over the change log until the delta is small, fence the shard's writes on
 * the source, replay the rest, verify row counts and checksums per table, switch the placement and
 * announce it; after the grace period delete the old copy and lift the fence. Anything failing
 * before the switch (a verify mismatch included) rolls back: fence lifted, placement unchanged,
 * target copy deleted, and the move fails saying why. The phase is the DotgitStatus search
 * attribute; the write pause (fence → switch visible) is in the result.
 */
export async function shardMove(input: ShardMoveInput): Promise<ShardMoveResult> {
  const progress = { phase: 'preparing' as ShardMovePhase, rowsCopied: 0, changesApplied: 0, catchUpPasses: 0 };
  setHandler(shardMovePhaseQuery, () => progress);
  const phase = (p: ShardMovePhase) => {
    progress.phase = p;
    upsertSearchAttributes([{ key: SEARCH_ATTRIBUTES.status, value: p }]);
  };
  phase('preparing');

  let copySeconds = 0;
  let writePauseMs = 0;
  let tables: ShardTableCheck[] = [];
  try {
    await bulk.prepareShardMove(input);
    phase('copying');
    const copied = await bulk.copyShard(input);
    progress.rowsCopied = copied.rows;
    copySeconds = copied.seconds;

    phase('catching-up');
    let cursor = '0';
    for (;;) {
      const pass = await bulk.catchUpShard({ ...input, afterId: cursor });
      progress.catchUpPasses++;
      progress.changesApplied += pass.applied;
      cursor = pass.cursor;
      if (pass.remaining < SMALL_DELTA || progress.catchUpPasses >= MAX_PASSES) break;
    }

    phase('fenced');
    const { fencedAt } = await quick.fenceShardWrites(input);
    for (;;) {
      const pass = await quick.catchUpShard({ ...input, afterId: cursor });
      progress.changesApplied += pass.applied;
      cursor = pass.cursor;
      if (pass.applied === 0 && pass.remaining === 0) break;
    }
    phase('verifying');
    const verified = await quick.verifyShard(input);
    tables = verified.tables;
    if (!verified.ok) {
      const bad = tables.filter((t) => !t.ok).map((t) => `${t.table} (${t.sourceRows} rows on ${input.from}, ${t.targetRows} on ${input.to}${t.sourceRows === t.targetRows ? ', checksums differ' : ''})`);
      throw ApplicationFailure.nonRetryable(`verify failed: ${bad.join('; ')}`, 'ShardVerifyFailed');
    }
    const { switchedAt } = await quick.switchShard(input);
    writePauseMs = Math.max(0, switchedAt - fencedAt);
    phase('switched');
  } catch (err) {
    const undone = await CancellationScope.nonCancellable(async () => {
      phase('rolling-back');
      return quick.rollBackShardMove(input);
    });
    if (undone.rolledBack) {
      phase('rolled-back');
      throw ApplicationFailure.nonRetryable(`moving shard ${input.shard} from ${input.from} to ${input.to} failed and was rolled back: ${reason(err)}`, 'ShardMoveFailed');
    }
    // The switch had committed before the failure was seen: the shard lives on the target now.
    phase('switched');
  }

  phase('grace');
  if (input.graceSeconds > 0) await sleep(input.graceSeconds * 1000);
  phase('cleaning-up');
  let sourceRemoved = true;
  try {
    await bulk.dropShardCopy({ ...input, database: input.from });
    await quick.liftShardFence(input);
  } catch {
    sourceRemoved = false; // the shard moved; a leftover copy costs disk only, and stays fenced
  }
  phase('done');
  return {
    shard: input.shard,
    from: input.from,
    to: input.to,
    rowsCopied: progress.rowsCopied,
    copySeconds,
    rowsPerSecond: copySeconds > 0 ? Math.round(progress.rowsCopied / copySeconds) : progress.rowsCopied,
    catchUpPasses: progress.catchUpPasses,
    changesApplied: progress.changesApplied,
    writePauseMs,
    tables,
    sourceRemoved,
  };
}
