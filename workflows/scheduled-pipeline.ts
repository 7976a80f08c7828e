import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { ScheduleActivities } from '../activities/schedule-activities';
import type { ScheduledPipelineInput } from '../core/pipeline-schedules';
import { ORCHESTRATION_QUEUE } from '../core/run-types';

const schedules = proxyActivities<ScheduleActivities>({
  taskQueue: ORCHESTRATION_QUEUE,
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 20 },
});

/**
 * What a pipeline schedule (`dotgit-sched-<repoId>-<n>`, issue 17 item 6) starts at each firing:
 * records a run of the default branch's head with event `schedule`, and the activity starts its
 * `pipeline` workflow (ADR 0024: no other service's outbox). Answers the run id (null when there was nothing to run).
 */
export async function scheduledPipeline(input: ScheduledPipelineInput): Promise<string | null> {
  return schedules.queueScheduledRun({ input, firing: workflowInfo().workflowId });
}
