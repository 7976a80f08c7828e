import { executeChild, isCancellation, proxyActivities, WorkflowIdReusePolicy } from '@temporalio/workflow';
import type { MaintenanceActivities } from '../activities/maintenance-activities';
import { maintenanceWorkflowId, ORCHESTRATION_QUEUE, type RepoTarget } from '../core/run-types';

const maintenance = proxyActivities<MaintenanceActivities>({
  taskQueue: ORCHESTRATION_QUEUE,
  // A repack of a large repository takes minutes.
  startToCloseTimeout: '1 hour',
  retry: { initialInterval: '10 seconds', maximumAttempts: 3 },
});

/** Maintenance of one repository (started after many pushes, or by the sweep). */
export async function repoMaintenance(target: RepoTarget): Promise<{ pushesCovered: number }> {
  return maintenance.maintainRepo(target);
}

/** The scheduled sweep: every repository that changed since its last maintenance, one after another. */
export async function maintenanceSweep(): Promise<{ repos: number }> {
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
  return { repos: targets.length };
}
