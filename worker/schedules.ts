import { ScheduleAlreadyRunning, ScheduleOverlapPolicy } from '@temporalio/client';
import { connectTemporal } from '../core/temporal';
import { scheduledStart } from '../core/workflow-starter';
import { BACKUP_SCHEDULE, MAINTENANCE_SCHEDULE, REPLICA_RECONCILE_SCHEDULE, RESTORE_DRILL_SCHEDULE } from '../temporal-config/schedules';

/**
 * Creates the platform's Temporal Schedules when they do not exist yet (they then show, and can be
 * paused, in the Web UI). An existing schedule is left as the operator may have changed it.
 */
export async function ensureSchedules(address: string, namespace: string): Promise<void> {
  const client = await connectTemporal(address, namespace);
  const schedules = [
    { ...MAINTENANCE_SCHEDULE, catchupWindow: '1 hour', action: scheduledStart(MAINTENANCE_SCHEDULE.workflowType, []) },
    { ...BACKUP_SCHEDULE, action: scheduledStart(BACKUP_SCHEDULE.workflowType, [{ trigger: 'schedule' }]) },
    { ...RESTORE_DRILL_SCHEDULE, action: scheduledStart(RESTORE_DRILL_SCHEDULE.workflowType, []) },
    { ...REPLICA_RECONCILE_SCHEDULE, action: scheduledStart(REPLICA_RECONCILE_SCHEDULE.workflowType, []) },
  ];
  try {
    for (const s of schedules) {
      try {
        await client.schedule.create({
          scheduleId: s.id,
          spec: { intervals: [{ every: s.every }] },
          action: s.action,
          policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: s.catchupWindow },
        });
      } catch (err) {
        if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      }
    }
  } finally {
    await client.connection.close();
  }
}
