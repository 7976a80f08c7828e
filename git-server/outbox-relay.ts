import type { Client } from '@temporalio/client';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { Db } from '../core/db';
import type { Logger } from '../core/logger';
import { startWorkflow } from '../core/workflow-starter';
import type { WebhookDispatchInput } from '../core/webhook-payloads';
import { drainOutbox, isPermanentRefusal, type RowOutcome } from '../core/outbox-drainer';
import { drainPipelineStarts } from '../core/pipeline-starts';
import { syncRepoSchedules } from './schedule-sync';

/**
 * Starts a `pipeline` workflow for every pending `push_outbox` row, and a `webhookDispatch` for
 * every pending `webhook_outbox` row. Workflow ids are deterministic (the run id; the push's
 * dispatch id), so a start retried after a crash is a no-op; while Temporal is down rows wait.
 * Every git-server instance runs one against the same Postgres without double starts: a pass
 * claims its rows FOR UPDATE SKIP LOCKED and stamps them in the same transaction (`drainOutbox`),
 * so no two passes hold a row; a relay that dies mid-pass rolls back, and the next one's start of
 * the same workflow id is refused as already started (REJECT_DUPLICATE), which counts as done.
 */
export class OutboxRelay {
  constructor(
    private readonly db: Db,
    private readonly temporal: () => Promise<Client>,
    private readonly log: Logger,
  ) {}

  /** One pass over both outboxes (a PollingRelay runs it; a push's commit kicks it). */
  async drainAll(): Promise<void> {
    await this.drain();
    await this.drainWebhookEvents();
    await this.drainSchedules();
  }

  /**
   * Pipeline schedules (issue 17 item 6): each row names a repository whose default-branch file
   * changed; its Temporal Schedules are made to match what `repo_schedules` holds now. Temporal
   * down: the row waits with backoff.
   */
  drainSchedules(): Promise<number> {
    return drainOutbox(this.db, 'schedule_outbox', async (row) => {
      const { tenantId, repoId } = row.payload as { tenantId: number; repoId: number };
      try {
        await syncRepoSchedules(this.db, await this.temporal(), tenantId, repoId);
        return 'done';
      } catch (err) {
        return { permanent: isPermanentRefusal(err), message: String((err as Error).message) };
      }
    }, { onPermanent: async (_client, row, message) => this.log.warn({ repoId: (row.payload as { repoId: number }).repoId, err: message }, 'pipeline schedules refused') });
  }

  /**
   * Pipelines of pushes and schedules (the api drains its own hand-started runs' outbox with the same
   * code): a permanent refusal fails the run (it could never start); a transient one waits with backoff.
   */
  drain(): Promise<number> {
    return drainPipelineStarts(this.db, 'push_outbox', this.temporal, this.log);
  }

  /** Webhook events of pushes: best effort, a refused start drops the event (logged); they never hold up pipelines. */
  drainWebhookEvents(): Promise<number> {
    return drainOutbox(
      this.db,
      'webhook_outbox',
      async (row) => {
        const temporal = await this.temporal();
        return this.attempt(() => startWorkflow(temporal, 'webhookDispatch', String(row.workflow_id), [row.payload as WebhookDispatchInput], { workflowIdReusePolicy: 'REJECT_DUPLICATE' }));
      },
      { onPermanent: async (_client, row, message) => this.log.warn({ workflowId: row.workflow_id, err: message }, 'webhook dispatch refused; dropping the push event') },
    );
  }

  /** A start by deterministic id: "already started" is success. */
  private async attempt(start: () => Promise<void>): Promise<RowOutcome> {
    try {
      await start();
      return 'done';
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return 'done';
      return { permanent: isPermanentRefusal(err), message: String((err as Error).message) };
    }
  }
}
