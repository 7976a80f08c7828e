import { ApplicationFailure, proxyActivities } from '@temporalio/workflow';
import type { DbFailoverActivities } from '../activities/db-failover-activities';
import { planSwitchover, type SwitchoverInput, type SwitchoverResult } from '../core/db-switchover';
import { ORCHESTRATION_QUEUE } from '../core/run-types';

// Asking Patroni: quick calls, retried while a member does not answer.
const patroni = proxyActivities<DbFailoverActivities>({
  taskQueue: ORCHESTRATION_QUEUE,
  startToCloseTimeout: '90 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '5 seconds', maximumAttempts: 5 },
});
// Watching the handover: heartbeats every poll; a worker lost meanwhile is noticed within 15 s.
const watch = proxyActivities<DbFailoverActivities>({
  taskQueue: ORCHESTRATION_QUEUE,
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '15 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '5 seconds', maximumAttempts: 5 },
});

/** How long the workflow waits for the old primary to stream from the new one before reporting it has not. */
const REJOIN_SECONDS = 60;

/**
 * Planned switchover of the Postgres primary (`db-switchover`, ADR 0027): checks the cluster (one
 * running leader, a streaming candidate: the synchronous standby unless one is named), asks
 * Patroni to hand over (`POST /switchover`), and waits until the candidate leads and the old primary
 * follows it. Clients ride it out: connections find the new primary (core/db-leader.ts), statements
 * the old one refused are resent, so requests wait a second or two instead of failing.
 */
export async function dbSwitchover(input: SwitchoverInput): Promise<SwitchoverResult> {
  const plan = planSwitchover(await patroni.patroniCluster(), input.candidate);
  if ('refused' in plan) throw ApplicationFailure.nonRetryable(`switchover refused: ${plan.refused}`, 'SwitchoverRefused');
  await patroni.requestSwitchover(plan);
  const { oldLeaderRejoined } = await watch.awaitSwitchover({ ...plan, rejoinSeconds: REJOIN_SECONDS });
  return { from: plan.leader, to: plan.candidate, oldLeaderRejoined };
}
