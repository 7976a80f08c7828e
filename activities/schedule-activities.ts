import { createHash } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/activity';
import type { Db } from '../core/db';
import { answerMessage, fetchFromGitServer } from '../core/git-upstreams';
import { SERVICE_HEADER, signServiceToken } from '../core/internal-identity';
import type { ShardRouter } from '../core/shard-router';
import type { ScheduledPipelineInput } from '../core/pipeline-schedules';
import { pipelineWorkflowId, type PipelineInput } from '../core/run-types';
import { startQueuedPipeline } from '../core/pipeline-starts';
import { insertQueuedRun } from '../core/stores/runs-store';
import { findRepoSchedules } from '../core/stores/schedules-store';
import type { PipelineFileSource } from './pipeline-file';

export interface ScheduleActivityDeps extends PipelineFileSource {
  db: Db;
  /** The tenant's shard holds its schedules and runs (ADR 0025); without it, `db` holds every shard. */
  router?: Pick<ShardRouter, 'forTenant'>;
  /** Starts the run's `pipeline` workflow itself (ADR 0024): the worker writes no other service's outbox. */
  temporal: () => Promise<Client>;
}

/** Activities of scheduled pipelines (issue 17 item 6): queueing the run a schedule fired for. */
export function createScheduleActivities(deps: ScheduleActivityDeps) {
  const dbOf = (tenantId: number) => deps.router?.forTenant(tenantId) ?? deps.db;
  /** What the ref names now, through a git-server (as the api resolves refs); undefined when nothing. */
  async function resolveRef(owner: string, name: string, ref: string): Promise<{ ref: string; commit: string } | undefined> {
    const res = await fetchFromGitServer(deps.gitUpstreams, '/internal/repos/resolve', {
      method: 'POST',
      headers: { 'content-type': 'application/json', [SERVICE_HEADER]: await signServiceToken(deps.internalSecret, 'worker') },
      body: JSON.stringify({ owner, name, ref }),
      signal: AbortSignal.timeout(30_000),
    });
    if (res.status === 404) return undefined;
    if (!res.ok) throw new Error(`git-server answered ${res.status} resolving ${ref} of ${owner}/${name}: ${await answerMessage(res)}`);
    return (await res.json()) as { ref: string; commit: string };
  }

  return {
    /**
     * Records a run of the default branch's head (the ref the last push to it recorded) with event
     * `schedule` and starts its `pipeline` workflow through the typed starter, by run id: no outbox,
     * since this activity is itself retried by Temporal (ADR 0024). The run id derives from the
     * firing's workflow id, so a retried activity records it once and starts it once (a run no longer
     * queued is not started again). Answers the run id, or null when there is nothing to run (the
     * schedules are gone, or the branch is).
     */
    async queueScheduledRun(args: { input: ScheduledPipelineInput; firing: string }): Promise<string | null> {
      const { input } = args;
      const db = dbOf(input.tenantId);
      const recorded = await findRepoSchedules(db, input.tenantId, input.repoId);
      if (!recorded || recorded.crons.length === 0) return null;
      const target = await resolveRef(input.tenant, input.repo, recorded.ref);
      if (!target) return null;
      const runId = pipelineWorkflowId(input.tenant, input.repo, `schedule-${createHash('sha256').update(args.firing).digest('hex').slice(0, 16)}`);
      const run: PipelineInput = { runId, tenantId: input.tenantId, tenant: input.tenant, repoId: input.repoId, repo: input.repo, ref: target.ref, commit: target.commit, event: 'schedule' };
      try {
        await insertQueuedRun(db, run);
      } catch (err) {
        // A retry after an earlier attempt recorded it: go on to the start, which may not have happened.
        if ((err as { code?: string }).code !== '23505') throw ApplicationFailure.retryable((err as Error).message, 'QueueFailed');
      }
      await startQueuedPipeline(db, deps.temporal, run);
      return runId;
    },
  };
}

export type ScheduleActivities = ReturnType<typeof createScheduleActivities>;
