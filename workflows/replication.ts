import { type ActivityOptions, ActivityFailure, condition, continueAsNew, defineSignal, patched, proxyActivities, setHandler, TimeoutFailure, workflowInfo } from '@temporalio/workflow';
import type { ReplicationActivities } from '../activities/replication-activities';
import { ORCHESTRATION_QUEUE, storageQueue } from '../core/run-types';
import { PUSHED_SIGNAL, type PushedSignal, type ReconcileResult, type ReplicationInput, type SyncResult } from '../core/replication-types';

// A sync retries a few times quickly; a zone that stays down is retried by the workflow itself
// with backoff, so it catches up whenever it returns while the other zones go on.
const SYNC_OPTIONS: Omit<ActivityOptions, 'taskQueue'> = {
  startToCloseTimeout: '30 minutes',
  retry: { initialInterval: '500 milliseconds', backoffCoefficient: 2, maximumInterval: '2 seconds', maximumAttempts: 3, nonRetryableErrorTypes: ['UnknownZoneError'] },
};
const RECONCILE_OPTIONS: Omit<ActivityOptions, 'taskQueue'> = {
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '10 seconds', maximumAttempts: 3 },
};
const reconcile = proxyActivities<ReplicationActivities>({ taskQueue: ORCHESTRATION_QUEUE, ...RECONCILE_OPTIONS });
const listNodes = proxyActivities<ReplicationActivities>({ taskQueue: ORCHESTRATION_QUEUE, startToCloseTimeout: '1 minute', retry: { initialInterval: '2 seconds', maximumAttempts: 10 } });
/** A node whose worker takes nothing for this long (down, or none polls its queue) is reported, not waited for. */
const NODE_TAKES_WITHIN = '1 minute';

export const pushedSignal = defineSignal<[PushedSignal]>(PUSHED_SIGNAL);

/** Without pushes for this long the workflow ends; the next push signals-with-start a new one. */
const IDLE_MS = 10 * 60_000;
const RETRY_FIRST_MS = 2_000;
const RETRY_MAX_MS = 60_000;
/** Rounds before continue-as-new keeps the history short. */
const MAX_ROUNDS = 200;

/**
 * One repository's replication (`replication:<tenant>:<repo>`), signalled after every push. Pushes
 * that arrive while a round runs coalesce into the next round. Each zone is synced on its own: a
 * zone that fails stays "behind" (with the time of the oldest push it lacks, for the lag) and is
 * retried with backoff, or at once on the next push. Ends when idle and nothing is behind.
 */
export async function replication(input: ReplicationInput): Promise<{ rounds: number }> {
  const { pendingSince: _p, behind: _b, idleMs = IDLE_MS, ...target } = input;
  // Syncs read the primary copy: they run beside the node holding it (ADR 0014). Inputs from before
  // nodes (and their histories) name none and keep the orchestration queue: the input decides, no patch.
  const sync = proxyActivities<ReplicationActivities>({ taskQueue: target.node ? storageQueue(target.node) : ORCHESTRATION_QUEUE, ...SYNC_OPTIONS });
  let pendingSince = input.pendingSince;
  const behind = new Map<string, number>(Object.entries(input.behind ?? {}));
  setHandler(pushedSignal, ({ pushedAt }) => {
    pendingSince = Math.min(pendingSince ?? pushedAt, pushedAt);
  });
  let failures = 0;
  let rounds = 0;
  for (;;) {
    if (behind.size > 0) {
      // Back off, but a new push retries at once.
      await condition(() => pendingSince !== undefined, Math.min(RETRY_FIRST_MS * 2 ** Math.max(0, failures - 1), RETRY_MAX_MS));
    } else if (pendingSince === undefined && !(await condition(() => pendingSince !== undefined, idleMs))) {
      return { rounds };
    }
    if (rounds >= MAX_ROUNDS || workflowInfo().continueAsNewSuggested) {
      return continueAsNew<typeof replication>({ ...target, idleMs, pendingSince, behind: Object.fromEntries(behind) });
    }
    rounds++;
    const zones = await sync.replicaZones();
    if (pendingSince !== undefined) {
      for (const zone of zones) behind.set(zone, Math.min(behind.get(zone) ?? pendingSince, pendingSince));
      pendingSince = undefined;
    }
    for (const zone of behind.keys()) if (!zones.includes(zone)) behind.delete(zone);
    const round = [...behind];
    const outcomes = await Promise.allSettled(round.map(([zone, since]) => sync.syncReplica({ target, zone, pushedAt: since })));
    let failed = false;
    outcomes.forEach((o) => {
      if (o.status === 'fulfilled') behind.delete((o.value as SyncResult).zone);
      else failed = true;
    });
    failures = failed ? failures + 1 : 0;
  }
}

/**
 * The scheduled reconciliation (`dotgit-replica-reconcile`): compares every repository across zones
 * and repairs drift. Since storage nodes (added later, hence patched) each node compares the
 * repositories it holds, on its own queue, side by side; a node that is down or takes nothing is
 * named in `failed` (its repositories wait for the next pass). With no repository placed on a node,
 * the orchestration worker's disk as before.
 */
export async function reconcileReplicas(): Promise<ReconcileResult> {
  if (!patched('reconcile-per-node')) return reconcile.reconcileReplicas();
  const nodes = await listNodes.reconcileNodes();
  if (nodes.up.length + nodes.down.length === 0) return reconcile.reconcileReplicas();
  const outcomes = await Promise.allSettled(
    nodes.up.map((node) => proxyActivities<ReplicationActivities>({ taskQueue: storageQueue(node), scheduleToStartTimeout: NODE_TAKES_WITHIN, ...RECONCILE_OPTIONS }).reconcileReplicas({ node })),
  );
  const result: ReconcileResult = { repos: 0, zones: 0, repaired: [], failed: nodes.down.map((node) => `storage node ${node} is down: its repositories were not compared`) };
  outcomes.forEach((o, i) => {
    if (o.status === 'fulfilled') {
      result.repos += o.value.repos;
      result.zones = Math.max(result.zones, o.value.zones);
      result.repaired.push(...o.value.repaired);
      result.failed.push(...o.value.failed);
      return;
    }
    const err = o.reason as Error;
    const notTaken = err instanceof ActivityFailure && err.cause instanceof TimeoutFailure && err.cause.timeoutType === 'SCHEDULE_TO_START';
    result.failed.push(notTaken ? `storage node ${nodes.up[i]} took nothing within ${NODE_TAKES_WITHIN}: its repositories were not compared` : `storage node ${nodes.up[i]}: ${((err.cause as Error | undefined) ?? err).message.slice(0, 200)}`);
  });
  return result;
}
