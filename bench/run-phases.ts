/**
 * Where a run's time goes before its first step runs, from the workflow's Temporal history: when
 * the workflow started, when the worker first took a workflow task, and when each activity before
 * the first `runStep` was scheduled, started and completed (Temporal's own event times, the same
 * machine clock as everything else the bench compares).
 */
import type { Client } from '@temporalio/client';

export interface RunPhases {
  /** WorkflowExecutionStarted: the relay's start call reached Temporal. */
  workflowStarted: number;
  /** The first WorkflowTaskStarted: a worker picked the new workflow up. */
  firstWorkflowTask: number;
  /** Per activity type, the first execution's scheduled / started / completed times. */
  activities: Record<string, { scheduled: number; started?: number; completed?: number }>;
}

interface TimestampLike {
  seconds?: number | { toNumber(): number } | null;
  nanos?: number | null;
}

function ms(t: TimestampLike | null | undefined): number {
  if (!t) return NaN;
  const s = typeof t.seconds === 'number' ? t.seconds : (t.seconds?.toNumber() ?? 0);
  return s * 1000 + (t.nanos ?? 0) / 1e6;
}

export async function runPhases(client: Client, workflowId: string): Promise<RunPhases> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const out: RunPhases = { workflowStarted: NaN, firstWorkflowTask: NaN, activities: {} };
  const byScheduledId = new Map<string, string>();
  for (const e of history.events ?? []) {
    const at = ms(e.eventTime as TimestampLike | undefined);
    if (e.workflowExecutionStartedEventAttributes) out.workflowStarted = at;
    else if (e.workflowTaskStartedEventAttributes && Number.isNaN(out.firstWorkflowTask)) out.firstWorkflowTask = at;
    else if (e.activityTaskScheduledEventAttributes) {
      const name = e.activityTaskScheduledEventAttributes.activityType?.name ?? '?';
      byScheduledId.set(String(e.eventId), name);
      out.activities[name] ??= { scheduled: at };
    } else if (e.activityTaskStartedEventAttributes) {
      const name = byScheduledId.get(String(e.activityTaskStartedEventAttributes.scheduledEventId));
      const a = name ? out.activities[name] : undefined;
      if (a && a.started === undefined) a.started = at;
    } else if (e.activityTaskCompletedEventAttributes) {
      const name = byScheduledId.get(String(e.activityTaskCompletedEventAttributes.scheduledEventId));
      const a = name ? out.activities[name] : undefined;
      if (a && a.completed === undefined) a.completed = at;
    }
  }
  return out;
}
