import { ApplicationFailure, isCancellation, log, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { AlertActivities } from '../activities/alert-activities';
import type { BackupActivities } from '../activities/backup-activities';
import { ORCHESTRATION_QUEUE } from '../core/run-types';
import { backupIdFor, restoreIdFor, type BackupInput, type BackupResult, type DrillResult, type RestoreInput, type RestoreResult } from '../core/backup-types';

// Long parts heartbeat every 5 s: a killed worker is noticed within 30 s and the part is retried
// on the restarted one (parts write keys of their own backup id, so a retry overwrites, never mixes).
const heavy = proxyActivities<BackupActivities>({
  taskQueue: ORCHESTRATION_QUEUE,
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '5 seconds', maximumInterval: '1 minute', maximumAttempts: 5, nonRetryableErrorTypes: ['NoBackupError'] },
});
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
    const repos = await heavy.backupRepositories({ id, full });
    const postgres = await heavy.backupPostgres({ id, full });
    const result = await light.completeBackup({ id, startedAt: info.runStartTime.toISOString(), postgres, repos: repos.repos, changed: repos.changed });
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
    outcome = await heavy.compareWithLive({ id });
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
