/**
 * Scheduled pipelines (issue 17 item 6; ADR 0031): each `on: schedule:` entry of a repository's
 * default-branch pipeline file is a Temporal Schedule, `dotgit-sched-<repoId>-<n>` (n: the entry's
 * position), whose action starts `scheduledPipeline`, which queues a run of the default branch's
 * head with event `schedule`. Pure names and types: the workflow imports this file.
 */

/** At most this many entries (core/pipeline-triggers.ts refuses more), so ids n >= this never exist. */
export { MAX_SCHEDULES } from './pipeline-triggers';

/** The Temporal Schedule id of a repository's n-th schedule entry (stable: the same entry keeps its id). */
export function pipelineScheduleId(repoId: number, n: number): string {
  return `dotgit-sched-${repoId}-${n}`;
}

/** What a schedule's action hands `scheduledPipeline`. */
export interface ScheduledPipelineInput {
  tenantId: number;
  tenant: string;
  repoId: number;
  repo: string;
  /** The entry as written, for the run's record and the Web UI. */
  cron: string;
}
