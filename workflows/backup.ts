import { type ActivityOptions, ActivityFailure, ApplicationFailure, isCancellation, log, patched, proxyActivities, TimeoutFailure, workflowInfo } from '@temporalio/workflow';
import type { AlertActivities } from '../activities/alert-activities';
import type { BackupActivities } from '../activities/backup-activities';
import { ORCHESTRATION_QUEUE, storageQueue } from '../core/run-types';
import { backupIdFor, restoreIdFor, type BackupInput, type BackupResult, type DrillResult, type RestoreInput, type RestoreResult } from '../core/backup-types';

// Long parts heartbeat every 5 s: a killed worker is noticed within 30 s and the part is retried
// on the restarted one (parts write keys of their own backup id, so a retry overwrites, never mixes).
const HEAVY: Omit<ActivityOptions, 'taskQueue'> = {
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '5 seconds', maximumInterval: '1 minute', maximumAttempts: 5, nonRetryableErrorTypes: ['NoBackupError', 'WrongNodeError'] },
};
const heavy = proxyActivities<BackupActivities>({ taskQueue: ORCHESTRATION_QUEUE, ...HEAVY });
/**
 * The repository parts run beside each storage node, by its `storage` worker (ADR 0014). A node
 * whose worker takes nothing for 2 minutes (it is down, or none polls its queue) misses the backup
 * instead of holding it up: its repositories are carried over from the previous one.
 */
const NODE_TAKES_WITHIN = '2 minutes';
const onNode = (node: string) => proxyActivities<BackupActivities>({ taskQueue: storageQueue(node), scheduleToStartTimeout: NODE_TAKES_WITHIN, ...HEAVY });

/** True when the activity failed because no worker took it in time (Temporal never retries that). */
const notTaken = (err: unknown) => err instanceof ActivityFailure && err.cause instanceof TimeoutFailure && err.cause.timeoutType === 'SCHEDULE_TO_START';

/**
 * Runs `part` on every up node holding repositories, side by side. Answers the nodes that ran it
 * with their results and the ones that missed it (listed down, or took nothing in time); any
 * other failure fails the whole walk.
 */
async function perNode<T>(nodes: { up: string[]; down: string[] }, part: (node: string) => Promise<T>): Promise<{ ran: Array<[string, T]>; missed: string[] }> {
  const outcomes = await Promise.allSettled(nodes.up.map(part));
  const ran: Array<[string, T]> = [];
  const missed = [...nodes.down];
  outcomes.forEach((o, i) => {
    if (o.status === 'fulfilled') ran.push([nodes.up[i], o.value]);
    else if (notTaken(o.reason)) missed.push(nodes.up[i]);
  });
  const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected' && !notTaken(o.reason));
  if (failed) throw failed.reason;
  return { ran, missed: missed.sort() };
}
const light = proxyActivities<BackupActivities>({
  taskQueue: ORCHESTRATION_QUEUE,
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '2 seconds', maximumAttempts: 10 },
});

// An alert receiver that is down gets tries for about half an hour; a refused or rejected alert is final.
const alerts = proxyActivities<AlertActivities>({
  taskQueue: ORCHESTRATION_QUEUE,
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '10 minutes', maximumAttempts: 8, nonRetryableErrorTypes: ['AlertRefused', 'AlertRejected'] },
});

const message = (err: unknown) => (err instanceof ApplicationFailure || err instanceof Error ? (err.cause as Error | undefined)?.message ?? err.message : String(err));

/**
 * One backup: repositories (incremental bundles), then Postgres (a base backup when due; the WAL
 * archive runs continuously), then the manifest, written last so that only a whole backup is
 * ever complete; then retention. Started by the `dotgit-backup` schedule or the api.
 */
export async function backup(input: BackupInput): Promise<BackupResult> {
  const info = workflowInfo();
  const id = input.id ?? backupIdFor(info.runStartTime, info.runId.slice(0, 8));
  const full = input.full ?? false;
  await light.startBackupRecord({ id, trigger: input.trigger });
  try {
    // Per storage node since nodes (added later, hence patched). No repository placed on a node
    // (a platform from before nodes): the orchestration worker's disk, as before.
    const nodes = patched('backup-per-node') ? await light.listBackupNodes() : { up: [], down: [] };
    let complete: { repos: number; changed: number; nodes?: string[]; missedNodes?: string[] };
    if (nodes.up.length + nodes.down.length === 0) {
      complete = await heavy.backupRepositories({ id, full });
    } else {
      const { ran, missed } = await perNode(nodes, (node) => onNode(node).backupRepositories({ id, full, node }));
      if (missed.length) log.warn('storage nodes missed the backup; their repositories are carried over from the previous one', { missed });
      complete = {
        repos: ran.reduce((n, [, r]) => n + r.repos, 0),
        changed: ran.reduce((n, [, r]) => n + r.changed, 0),
        nodes: ran.map(([node]) => node),
        missedNodes: missed,
      };
    }
    const postgres = await heavy.backupPostgres({ id, full });
    const result = await light.completeBackup({ id, startedAt: info.runStartTime.toISOString(), postgres, ...complete });
    await heavy.applyRetention();
    return result;
  } catch (err) {
    if (!isCancellation(err)) await light.failBackup({ id, error: message(err) });
    throw err;
  }
}

/** Restores repositories and Postgres to `at` into a fresh directory (`.data/restores/<id>`). */
export async function restore(input: RestoreInput): Promise<RestoreResult> {
  const info = workflowInfo();
  const id = input.id ?? restoreIdFor('restore', info.runStartTime, info.runId.slice(0, 8));
  await light.startRestoreRecord({ id, kind: 'restore', at: input.at });
  try {
    return await heavy.restoreTo({ id, at: input.at, repos: input.repos, postgres: input.postgres });
  } catch (err) {
    if (!isCancellation(err)) await light.failRestore({ id, problems: [message(err)] });
    throw err;
  }
}

/**
 * The daily drill (`dotgit-restore-drill` schedule): restores the newest backup into a scratch
 * area and compares it with the live data. A failed drill is recorded and counted in a metric.
 */
export async function restoreDrill(): Promise<DrillResult> {
  const info = workflowInfo();
  const id = restoreIdFor('drill', info.runStartTime, info.runId.slice(0, 8));
  await light.startRestoreRecord({ id, kind: 'drill', at: info.runStartTime.toISOString() });
  let outcome: { problems: string[]; backupId: string };
  try {
    // The comparison with live repositories runs beside each storage node (added later, hence patched).
    const nodes = patched('drill-per-node') ? await light.listBackupNodes() : { up: [], down: [] };
    const liveOnNodes = nodes.up.length + nodes.down.length > 0;
    outcome = await heavy.compareWithLive(liveOnNodes ? { id, liveOnNodes } : { id });
    if (liveOnNodes && outcome.backupId) {
      const backupId = outcome.backupId;
      // A down node's repositories cannot be compared now (its outage is seen elsewhere); an up one that takes nothing is a problem.
      const { ran, missed } = await perNode({ up: nodes.up, down: [] }, (node) => onNode(node).checkLiveRepos({ backupId, node }));
      outcome.problems.push(...ran.flatMap(([, r]) => r.problems), ...missed.map((node) => `storage node ${node} took no comparison within ${NODE_TAKES_WITHIN}: its repositories were not compared with live`));
    }
  } catch (err) {
    if (isCancellation(err)) throw err;
    outcome = { problems: [message(err)], backupId: '' };
  }
  await light.finishDrill({ id, ...outcome });
  // A failed drill is an alert: the metric (finishDrill) and the operator's webhook (added later, hence patched).
  if (outcome.problems.length > 0 && patched('drill-alert')) {
    await alerts
      .sendAlert({ event: 'restore_drill.failed', summary: `restore drill ${id} failed: ${outcome.problems[0]}`.slice(0, 500), detail: { drillId: id, backupId: outcome.backupId || null, problems: outcome.problems.slice(0, 20) } })
      .catch((err) => log.warn('the drill alert could not be delivered', { error: message(err) }));
  }
  return { ok: outcome.problems.length === 0, backupId: outcome.backupId || undefined, problems: outcome.problems };
}
