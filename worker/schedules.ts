import { ScheduleAlreadyRunning, ScheduleOverlapPolicy } from '@temporalio/client';
import { connectTemporal } from '../core/temporal';
import { ORCHESTRATION_QUEUE } from '../core/run-types';
import { BACKUP_SCHEDULE, MAINTENANCE_SCHEDULE, REPLICA_RECONCILE_SCHEDULE, RESTORE_DRILL_SCHEDULE } from '../temporal-config/schedules';

/**
 * Creates the platform's Temporal Schedules when they do not exist yet (they then show, and can be
 * paused, in the Web UI). An existing schedule is left as the operator may have changed it.
 */
export async function ensureSchedules(address: string, namespace: string): Promise<void> {
  const client = await connectTemporal(address, namespace);
  const schedules = [
    { ...MAINTENANCE_SCHEDULE, catchupWindow: '1 hour', args: [] as unknown[] },
    { ...BACKUP_SCHEDULE, args: [{ trigger: 'schedule' }] },
    { ...RESTORE_DRILL_SCHEDULE, args: [] },
    { ...REPLICA_RECONCILE_SCHEDULE, args: [] },
  ];
  try {
    for (const s of schedules) {
      try {
        await client.schedule.create({
          scheduleId: s.id,
          spec: { intervals: [{ every: s.every }] },
          action: { type: 'startWorkflow', workflowType: s.workflowType, taskQueue: ORCHESTRATION_QUEUE, args: s.args },
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
