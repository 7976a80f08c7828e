import { ScheduleAlreadyRunning, ScheduleNotFoundError, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import type { Db } from '../core/db';
import { FileTooLargeError, readFileAtCommit } from '../core/git';
import { MAX_PIPELINE_FILE_BYTES, PIPELINE_PATH, PipelineSpecError, parsePipeline } from '../core/pipeline-spec';
import { MAX_SCHEDULES, pipelineScheduleId, type ScheduledPipelineInput } from '../core/pipeline-schedules';
import { findRepoSchedules } from '../core/stores/schedules-store';
import { scheduledStart } from '../core/workflow-starter';

/**
 * The cron entries of the pipeline file at a default-branch commit: [] without a file (its
 * schedules go), undefined when the file is not valid (its schedules stay as they were; the push's
 * run fails with the line and the problem).
 */
export async function cronsAt(gitDir: string, commit: string): Promise<string[] | undefined> {
  try {
    return cronsIn(await readFileAtCommit(gitDir, commit, PIPELINE_PATH, MAX_PIPELINE_FILE_BYTES));
  } catch (err) {
    if (err instanceof FileTooLargeError) return undefined;
    throw err;
  }
}

/** `cronsAt` of a pipeline file already read (undefined: there is none). */
export function cronsIn(text: string | undefined): string[] | undefined {
  if (text === undefined) return [];
  try {
    return (parsePipeline(text).on.schedule ?? []).map((s) => s.cron);
  } catch (err) {
    if (err instanceof PipelineSpecError) return undefined;
    throw err;
  }
}

/**
 * Makes a repository's Temporal Schedules match its `repo_schedules` row: entry n is schedule
 * `dotgit-sched-<repoId>-<n>`, created or updated to its cron; ids past the last entry are
 * deleted. Reads the row, not the outbox payload, so rows drained in any order converge on the
 * latest push's file; each call is idempotent.
 */
export async function syncRepoSchedules(db: Db, temporal: Client, tenantId: number, repoId: number): Promise<void> {
  const desired = await findRepoSchedules(db, tenantId, repoId);
  const crons = desired?.crons ?? [];
  for (let n = 0; n < MAX_SCHEDULES; n++) {
    const scheduleId = pipelineScheduleId(repoId, n);
    if (n >= crons.length || !desired) {
      await temporal.schedule
        .getHandle(scheduleId)
        .delete()
        .catch((err: unknown) => {
          if (!(err instanceof ScheduleNotFoundError)) throw err;
        });
      continue;
    }
    const input: ScheduledPipelineInput = { tenantId, tenant: desired.owner, repoId, repo: desired.repo, cron: crons[n] };
    const action = scheduledStart('scheduledPipeline', [input], scheduleId);
    const spec = { cronExpressions: [crons[n]] };
    const memo = { repo: `${desired.owner}/${desired.repo}`, ref: desired.ref, cron: crons[n], commit: desired.commit };
    try {
      await temporal.schedule.create({ scheduleId, spec, action, memo, policies: { overlap: ScheduleOverlapPolicy.SKIP } });
    } catch (err) {
      if (!(err instanceof ScheduleAlreadyRunning)) throw err;
      await temporal.schedule.getHandle(scheduleId).update((prev) => ({ ...prev, spec, action }));
    }
  }
}
