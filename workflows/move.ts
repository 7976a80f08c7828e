import { ActivityFailure, ApplicationFailure, CancellationScope, proxyActivities, sleep } from '@temporalio/workflow';
import type { MoveActivities } from '../activities/move-activities';
import type { MoveInput, MoveResult } from '../core/repo-moves';
import { ORCHESTRATION_QUEUE } from '../core/run-types';

// The fetches may move a large repository; a node that does not answer is retried a few times.
const fetches = proxyActivities<MoveActivities>({
  taskQueue: ORCHESTRATION_QUEUE,
  startToCloseTimeout: '1 hour',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 3 },
});
const records = proxyActivities<MoveActivities>({
  taskQueue: ORCHESTRATION_QUEUE,
  startToCloseTimeout: '2 minutes',
  retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 5 },
});

function reason(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}

/**
 * Moves one repository between storage nodes (`move:<tenant>:<repo>`, ADR 0014), losing no push:
 * copy (the target fetches from the source, writes open), fence writes (pushes answer 503 with
 * Retry-After; those already running end first), catch up (the target fetches again and must hold
 * exactly the source's refs, all objects connected), switch (`repos.node_id` and the fence in one
 * transaction). Anything failing before the switch lifts the fence and drops the target's copy:
 * the source holds the repository as before and the move ends failed, saying why. After the switch
 * the source's copy stays for a grace period (reads that began there finish), then is dropped.
 */
export async function moveRepository(input: MoveInput): Promise<MoveResult> {
  let refs: number;
  try {
    await fetches.copyRepository(input);
    const { refs: sourceRefs } = await records.fenceWrites(input);
    ({ refs } = await fetches.catchUp({ ...input, sourceRefs }));
    await records.switchNode(input);
  } catch (err) {
    await CancellationScope.nonCancellable(async () => {
      await records.unfence(input);
      await records.dropCopy({ ...input, node: input.to }).catch(() => undefined);
    });
    throw ApplicationFailure.nonRetryable(`moving ${input.tenant}/${input.repo} from ${input.from} to ${input.to} failed: ${reason(err)}`, 'MoveFailed');
  }
  await sleep(input.graceSeconds * 1000);
  let sourceRemoved = true;
  try {
    await records.dropCopy({ ...input, node: input.from });
  } catch {
    sourceRemoved = false; // the repository moved; a leftover copy costs disk only
  }
  return { from: input.from, to: input.to, refs, sourceRemoved };
}
