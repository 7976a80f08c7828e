import type { Client } from '@temporalio/client';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import type { Db } from '../core/db';
import type { Logger } from '../core/logger';
import { ORCHESTRATION_QUEUE, type PipelineInput } from '../core/run-types';
import { SEARCH_ATTRIBUTES } from '../core/temporal';
import type { WebhookDispatchInput } from '../core/webhook-payloads';

/**
 * Starts a `pipeline` workflow for every pending outbox row. The workflow id is the run id, so a
 * start retried after a crash is a no-op; while Temporal is down rows wait and are started later.
 */
export class OutboxRelay {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly db: Db,
    private readonly temporal: () => Promise<Client>,
    private readonly log: Logger,
    private readonly pollMs = 1000,
  ) {}

  start(): void {
    this.schedule(0);
  }

  /** Called after a push commits its rows, so pipelines start without waiting for the next poll. */
  kick(): void {
    if (this.running) this.again = true;
    else this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.running = this.drain()
        .then(() => this.drainWebhookEvents())
        .then(() => undefined)
        .catch((err) => this.log.warn({ err }, 'outbox relay pass failed'))
        .finally(() => {
          this.running = undefined;
          const next = this.again ? 0 : this.pollMs;
          this.again = false;
          this.schedule(next);
        });
    }, ms);
  }

  /**
   * One pass: claim a batch with SKIP LOCKED (several relays may run), start each, stamp it. A row
   * that fails is handled alone: a permanent refusal fails its run, a transient one waits with
   * exponential backoff; either way the rows behind it still start.
   */
  async drain(): Promise<number> {
    let started = 0;
    for (;;) {
      const client = await this.db.connect();
      try {
        await client.query('BEGIN');
        const rows = await client.query(
          `SELECT tenant_id, id, run_id, payload, attempts FROM push_outbox WHERE started_at IS NULL AND next_attempt_at <= now()
           ORDER BY next_attempt_at, id LIMIT 20 FOR UPDATE SKIP LOCKED`,
        );
        if (rows.rowCount === 0) {
          await client.query('COMMIT');
          return started;
        }
        const temporal = await this.temporal();
        // The batch's starts go out together: one at a time, a burst of runs (500 queued through
        // the API) waited on one Temporal round trip per run ahead of it. Order among runs was never
        // promised; each start is idempotent by workflow id.
        const outcomes = await Promise.all(rows.rows.map((row) => this.startOne(temporal, row.payload as PipelineInput)));
        for (const [i, row] of rows.rows.entries()) {
          const outcome = outcomes[i]!;
          if (outcome === 'started') {
            await client.query(`UPDATE push_outbox SET started_at = now(), attempts = attempts + 1 WHERE tenant_id = $1 AND id = $2`, [row.tenant_id, row.id]);
            started++;
          } else if (outcome.permanent) {
            this.log.warn({ runId: row.run_id, err: outcome.message }, 'pipeline start refused; failing the run');
            await client.query(`UPDATE push_outbox SET started_at = now(), attempts = attempts + 1, last_error = $3 WHERE tenant_id = $1 AND id = $2`, [row.tenant_id, row.id, outcome.message]);
            await client.query(`UPDATE runs SET status = 'failure', message = $3, finished_at = now() WHERE tenant_id = $1 AND id = $2 AND status = 'queued'`, [
              row.tenant_id,
              row.run_id,
              `the pipeline could not be started: ${outcome.message}`,
            ]);
          } else {
            const delaySeconds = Math.min(2 ** Math.min(Number(row.attempts), 8), 300);
            await client.query(
              `UPDATE push_outbox SET attempts = attempts + 1, last_error = $3, next_attempt_at = now() + make_interval(secs => $4) WHERE tenant_id = $1 AND id = $2`,
              [row.tenant_id, row.id, outcome.message, delaySeconds],
            );
          }
        }
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    }
  }

  /**
   * Starts a `webhookDispatch` workflow for every pending push event row, by the row's
   * deterministic workflow id (a retried start is a no-op). A refused start is dropped: webhooks
   * are best effort and never hold up pipelines; a transient failure waits with backoff.
   */
  async drainWebhookEvents(): Promise<number> {
    let started = 0;
    for (;;) {
      const client = await this.db.connect();
      try {
        await client.query('BEGIN');
        const rows = await client.query(
          `SELECT tenant_id, id, workflow_id, payload, attempts FROM webhook_outbox WHERE started_at IS NULL AND next_attempt_at <= now()
           ORDER BY next_attempt_at, id LIMIT 20 FOR UPDATE SKIP LOCKED`,
        );
        if (rows.rowCount === 0) {
          await client.query('COMMIT');
          return started;
        }
        const temporal = await this.temporal();
        for (const row of rows.rows) {
          let error: { permanent: boolean; message: string } | undefined;
          try {
            await temporal.workflow.start('webhookDispatch', {
              workflowId: row.workflow_id,
              taskQueue: ORCHESTRATION_QUEUE,
              args: [row.payload as WebhookDispatchInput],
              workflowIdReusePolicy: 'REJECT_DUPLICATE',
            });
          } catch (err) {
            if (!(err instanceof WorkflowExecutionAlreadyStartedError)) error = { permanent: isPermanentRefusal(err), message: String((err as Error).message).slice(0, 500) };
          }
          if (!error || error.permanent) {
            if (error) this.log.warn({ workflowId: row.workflow_id, err: error.message }, 'webhook dispatch refused; dropping the push event');
            await client.query(`UPDATE webhook_outbox SET started_at = now(), attempts = attempts + 1, last_error = $3 WHERE tenant_id = $1 AND id = $2`, [row.tenant_id, row.id, error?.message ?? null]);
            if (!error) started++;
          } else {
            const delaySeconds = Math.min(2 ** Math.min(Number(row.attempts), 8), 300);
            await client.query(
              `UPDATE webhook_outbox SET attempts = attempts + 1, last_error = $3, next_attempt_at = now() + make_interval(secs => $4) WHERE tenant_id = $1 AND id = $2`,
              [row.tenant_id, row.id, error.message, delaySeconds],
            );
          }
        }
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    }
  }

  private async startOne(temporal: Client, input: PipelineInput): Promise<'started' | { permanent: boolean; message: string }> {
    try {
      await temporal.workflow.start('pipeline', {
        workflowId: input.runId,
        taskQueue: ORCHESTRATION_QUEUE,
        args: [input],
        // A run id is used once: a start retried after the run finished must not run it again.
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        typedSearchAttributes: [
          { key: SEARCH_ATTRIBUTES.tenant, value: input.tenant },
          { key: SEARCH_ATTRIBUTES.repo, value: `${input.tenant}/${input.repo}` },
          { key: SEARCH_ATTRIBUTES.ref, value: input.ref },
          { key: SEARCH_ATTRIBUTES.commit, value: input.commit },
        ],
      });
      return 'started';
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return 'started';
      const message = String((err as Error).message).slice(0, 500);
      return { permanent: isPermanentRefusal(err), message };
    }
  }
}

/** gRPC INVALID_ARGUMENT (3) or FAILED_PRECONDITION (9): retrying the same request cannot succeed. */
function isPermanentRefusal(err: unknown): boolean {
  const code = (err as { code?: number; cause?: { code?: number } }).code ?? (err as { cause?: { code?: number } }).cause?.code;
  return code === 3 || code === 9;
}
