import type { Client } from '@temporalio/client';
import type { Db } from '../core/db';
import type { ShardRouter } from '../core/shard-router';
import type { Redis } from '../core/redis';
import { acquireGroupSignal, type GroupRequest } from '../core/concurrency-types';
import { appendRunEvent } from '../core/run-events';
import { publishPendingEvents } from '../core/pending-events';
import { setJobWaiting, setQueuedRunMessage } from '../core/stores/runs-store';
import { signalWithStartWorkflow } from '../core/workflow-starter';

export interface ConcurrencyActivityDeps {
  db: Db;
  router?: ShardRouter;
  redis?: Redis;
  temporal: () => Promise<Client>;
}

/** Light activities of pipeline concurrency groups (issue 17 item 4; orchestration queue). */
export function createConcurrencyActivities({ db, router, redis, temporal }: ConcurrencyActivityDeps) {
  const dbOf = (tenantId: number) => router?.forTenant(tenantId) ?? db;
  return {
    /**
     * Queues the run at its group's lock, starting the lock if it is not running (signal-with-start:
     * atomic; a retried activity only re-queues the same id, which the lock ignores).
     */
    async requestConcurrencyGroup(args: { lockWorkflowId: string; request: GroupRequest }): Promise<void> {
      const client = await temporal();
      await signalWithStartWorkflow(client, 'concurrencyGroup', args.lockWorkflowId, [{ queue: [] }], { name: acquireGroupSignal.name, args: [args.request] });
    },

    /** Why a queued run waits (issue 17 item 8), or null once it may start; a run that already started keeps its message. */
    async setRunWaitMessage(args: { runId: string; tenantId: number; message: string | null }): Promise<void> {
      if (await setQueuedRunMessage(dbOf(args.tenantId), args.tenantId, args.runId, args.message)) {
        await appendRunEvent(redis, args.runId, { event: 'status', status: 'queued', message: args.message });
      }
    },

    /** Why a job of a job-level group waits (ADR 0037), on its queued steps; null once it may start. */
    async setJobWaitMessage(args: { runId: string; tenantId: number; job: string; message: string | null }): Promise<void> {
      await setJobWaiting(dbOf(args.tenantId), args.tenantId, args.runId, args.job, args.message);
      await publishPendingEvents(dbOf(args.tenantId), redis, args.tenantId, args.runId);
    },
  };
}

export type ConcurrencyActivities = ReturnType<typeof createConcurrencyActivities>;
