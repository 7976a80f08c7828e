import type { Client } from '@temporalio/client';
import type { Db } from '../core/db';
import type { RepoTarget } from '../core/run-types';
import { signalWithStartWorkflow } from '../core/workflow-starter';
import { PUSHED_SIGNAL, replicationWorkflowId, type PushedSignal, type ReplicationInput } from '../core/replication-types';
import { drainOutbox } from '../core/outbox-drainer';

/**
 * Signals-with-start the repository's `replication` workflow for every pending replication outbox
 * row (written in the push's own transaction), so no push is ever missed: while Temporal is down
 * rows wait with backoff. Many pushes to one repository become signals to one workflow.
 * Safe in every git-server instance at once: rows are claimed FOR UPDATE SKIP LOCKED (`drainOutbox`),
 * and a row sent again after a relay died mid-pass is one more signal to the same workflow id,
 * folded into its pending sync (the earliest `pushedAt` wins), or at worst one more sync of
 * replicas already up to date (syncs are idempotent): never two replications of one repository at once.
 */
export class ReplicationRelay {
  constructor(
    private readonly db: Db,
    private readonly temporal: () => Promise<Client>,
  ) {}

  drain(): Promise<number> {
    return drainOutbox(
      this.db,
      'replication_outbox',
      async (row) => {
        const target = row.payload as RepoTarget;
        const pushed: PushedSignal = { pushedAt: new Date(row.created_at).getTime() };
        await signalWithStartWorkflow(await this.temporal(), 'replication', replicationWorkflowId(target.tenant, target.repo), [target satisfies ReplicationInput], {
          name: PUSHED_SIGNAL,
          args: [pushed],
        });
        return 'done';
      },
      { batch: 50 },
    );
  }
}
