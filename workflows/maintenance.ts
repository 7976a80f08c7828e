import { type ActivityOptions, executeChild, isCancellation, log, patched, proxyActivities, WorkflowIdReusePolicy } from '@temporalio/workflow';
import type { HousekeepingActivities, HousekeepingResult } from '../activities/housekeeping-activities';
import type { MaintenanceActivities } from '../activities/maintenance-activities';
import { maintenanceWorkflowId, ORCHESTRATION_QUEUE, storageQueue, type RepoTarget } from '../core/run-types';

const REPACK_OPTIONS: Omit<ActivityOptions, 'taskQueue'> = {
  // A repack of a large repository takes minutes.
  startToCloseTimeout: '1 hour',
  retry: { initialInterval: '10 seconds', maximumAttempts: 3 },
};
const maintenance = proxyActivities<MaintenanceActivities>({ taskQueue: ORCHESTRATION_QUEUE, ...REPACK_OPTIONS });

// Deletions go in batches with a heartbeat after each, so a worker lost mid-way is noticed soon;
// every part is safe to run again.
const housekeeping = proxyActivities<HousekeepingActivities>({
  taskQueue: ORCHESTRATION_QUEUE,
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '2 minutes',
  retry: { initialInterval: '10 seconds', maximumAttempts: 3 },
});

/** Maintenance of one repository (started after many pushes, or by the sweep). */
export async function repoMaintenance(target: RepoTarget): Promise<{ pushesCovered: number }> {
  // The repack runs beside the node holding the repository (ADR 0014). Targets from before nodes
  // (and their histories) name none and keep the orchestration queue: the input decides, no patch.
  // A node that went down after the sweep listed it: the repack gives up after 10 minutes unstarted
  // (the repository keeps its count for a later sweep) rather than holding up the sweep.
  const onDisk = target.node ? proxyActivities<MaintenanceActivities>({ taskQueue: storageQueue(target.node), scheduleToStartTimeout: '10 minutes', ...REPACK_OPTIONS }) : maintenance;
  return onDisk.maintainRepo(target);
}

const failure = (err: unknown) => ((err as Error).cause as Error | undefined)?.message ?? (err as Error).message;

/**
 * Housekeeping of a long-running platform, its parts side by side: outbox, delivery-log and
 * idempotency-key rows past their retention, restore copies no longer needed, sandbox state no
 * step owns any more. A part that fails is named in the result (and retried next hour); it stops
 * neither the others nor the repacks.
 */
async function housekeep(): Promise<HousekeepingResult> {
  const result: HousekeepingResult = { failed: [] };
  const part = async <K extends 'rows' | 'restoreCopies' | 'sandbox'>(name: K, run: () => Promise<HousekeepingResult[K]>) => {
    try {
      result[name] = await run();
    } catch (err) {
      if (isCancellation(err)) throw err;
      log.warn('a housekeeping part failed', { part: name, error: failure(err) });
      result.failed.push(`${name}: ${failure(err)}`);
    }
  };
  await Promise.all([
    part('rows', () => housekeeping.pruneRows()),
    part('restoreCopies', () => housekeeping.pruneRestoreCopies()),
    part('sandbox', () => housekeeping.pruneSandboxState()),
  ]);
  return result;
}

/**
 * The scheduled sweep (`dotgit-maintenance`, hourly): housekeeping, and beside it every repository
 * that changed since its last maintenance, one after another.
 */
export async function maintenanceSweep(): Promise<{ repos: number; housekeeping?: HousekeepingResult }> {
  // Added after the first sweeps ran, hence patched: their histories replay without it.
  const housekept = patched('maintenance-housekeeping') ? housekeep() : undefined;
  const targets = await maintenance.listReposNeedingMaintenance({ limit: 500 });
  for (const target of targets) {
    try {
      await executeChild(repoMaintenance, {
        workflowId: maintenanceWorkflowId(target.tenant, target.repo),
        args: [target],
        workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      });
    } catch (err) {
      // One repository that fails (or is already being maintained) must not stop the sweep;
      // its own workflow shows why in the Web UI.
      if (isCancellation(err)) throw err;
    }
  }
  return { repos: targets.length, ...(housekept ? { housekeeping: await housekept } : {}) };
}
