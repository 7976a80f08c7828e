import { ScheduleAlreadyRunning, ScheduleOverlapPolicy } from '@temporalio/client';
import { connectTemporal } from '../core/temporal';
import { ORCHESTRATION_QUEUE } from '../core/run-types';
import { MAINTENANCE_SCHEDULE } from '../temporal-config/schedules';

/**
 * Creates the platform's Temporal Schedules when they do not exist yet (they then show, and can be
 * paused, in the Web UI). An existing schedule is left as the operator may have changed it.
 */
export async function ensureSchedules(address: string, namespace: string): Promise<void> {
  const client = await connectTemporal(address, namespace);
  try {
    await client.schedule.create({
      scheduleId: MAINTENANCE_SCHEDULE.id,
      spec: { intervals: [{ every: MAINTENANCE_SCHEDULE.every }] },
      action: { type: 'startWorkflow', workflowType: MAINTENANCE_SCHEDULE.workflowType, taskQueue: ORCHESTRATION_QUEUE, args: [] },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 hour' },
    });
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  } finally {
    await client.connection.close();
  }
}
