import { createHash } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/activity';
import { inTransaction, type Db } from '../core/db';
import { answerMessage, fetchFromGitServer } from '../core/git-upstreams';
import { SERVICE_HEADER, signServiceToken } from '../core/internal-identity';
import type { ShardRouter } from '../core/shard-router';
import type { ScheduledPipelineInput } from '../core/pipeline-schedules';
import { pipelineWorkflowId, type PipelineInput } from '../core/run-types';
import { enqueuePipelineStart } from '../core/stores/outbox-store';
import { insertQueuedRun } from '../core/stores/runs-store';
import { findRepoSchedules } from '../core/stores/schedules-store';
import type { PipelineFileSource } from './pipeline-file';

export interface ScheduleActivityDeps extends PipelineFileSource {
  db: Db;
  /** The tenant's shard holds its schedules, runs and outbox (ADR 0025); without it, `db` holds every shard. */
  router?: Pick<ShardRouter, 'forTenant'>;
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
     * Queues a run of the default branch's head (the ref the last push to it recorded) with event
     * `schedule`, through the same outbox as pushes and hand-started runs. The run id derives from
     * the firing's workflow id, so a retried activity queues it once. Answers the run id, or null
     * when there is nothing to run (the schedules are gone, or the branch is).
     */
    async queueScheduledRun(args: { input: ScheduledPipelineInput; firing: string }): Promise<string | null> {
      const { input } = args;
      const recorded = await findRepoSchedules(dbOf(input.tenantId), input.tenantId, input.repoId);
      if (!recorded || recorded.crons.length === 0) return null;
      const target = await resolveRef(input.tenant, input.repo, recorded.ref);
      if (!target) return null;
      const runId = pipelineWorkflowId(input.tenant, input.repo, `schedule-${createHash('sha256').update(args.firing).digest('hex').slice(0, 16)}`);
      const run: PipelineInput = { runId, tenantId: input.tenantId, tenant: input.tenant, repoId: input.repoId, repo: input.repo, ref: target.ref, commit: target.commit, event: 'schedule' };
      try {
        await inTransaction(dbOf(input.tenantId), async (c) => {
          await insertQueuedRun(c, run);
          await enqueuePipelineStart(c, input.tenantId, runId, run);
        });
      } catch (err) {
        // A retry after the first attempt committed: queued already.
        if ((err as { code?: string }).code === '23505') return runId;
        throw ApplicationFailure.retryable((err as Error).message, 'QueueFailed');
      }
      return runId;
    },
  };
}

export type ScheduleActivities = ReturnType<typeof createScheduleActivities>;
