import type { Client } from '@temporalio/client';
import type { Db } from '../core/db';
import type { Logger } from '../core/logger';
import { ORCHESTRATION_QUEUE, type RepoTarget } from '../core/run-types';
import { PUSHED_SIGNAL, replicationWorkflowId, type PushedSignal, type ReplicationInput } from '../core/replication-types';

/**
 * Signals-with-start the repository's `replication` workflow for every pending replication outbox
 * row (written in the push's own transaction), so no push is ever missed: while Temporal is down
 * rows wait with backoff. Many pushes to one repository become signals to one workflow.
 */
export class ReplicationRelay {
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

  /** Called after a push commits its row, so replication starts without waiting for the next poll. */
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
        .then(() => undefined)
        .catch((err) => this.log.warn({ err }, 'replication relay pass failed'))
        .finally(() => {
          this.running = undefined;
          const next = this.again ? 0 : this.pollMs;
          this.again = false;
          this.schedule(next);
        });
    }, ms);
  }

  /** One pass: claim rows with SKIP LOCKED (several git-servers may relay), signal each, stamp it. */
  async drain(): Promise<number> {
    let signalled = 0;
    for (;;) {
      const client = await this.db.connect();
      try {
        await client.query('BEGIN');
        const rows = await client.query(
          `SELECT tenant_id, id, payload, attempts, created_at FROM replication_outbox WHERE started_at IS NULL AND next_attempt_at <= now()
           ORDER BY next_attempt_at, id LIMIT 50 FOR UPDATE SKIP LOCKED`,
        );
        if (rows.rowCount === 0) {
          await client.query('COMMIT');
          return signalled;
        }
        const temporal = await this.temporal();
        for (const row of rows.rows) {
          const target = row.payload as RepoTarget;
          const pushed: PushedSignal = { pushedAt: new Date(row.created_at).getTime() };
          try {
            await temporal.workflow.signalWithStart('replication', {
              workflowId: replicationWorkflowId(target.tenant, target.repo),
              taskQueue: ORCHESTRATION_QUEUE,
              args: [target satisfies ReplicationInput],
              signal: PUSHED_SIGNAL,
              signalArgs: [pushed],
            });
            await client.query(`UPDATE replication_outbox SET started_at = now(), attempts = attempts + 1 WHERE tenant_id = $1 AND id = $2`, [row.tenant_id, row.id]);
            signalled++;
          } catch (err) {
            const delaySeconds = Math.min(2 ** Math.min(Number(row.attempts), 8), 300);
            await client.query(
              `UPDATE replication_outbox SET attempts = attempts + 1, last_error = $3, next_attempt_at = now() + make_interval(secs => $4) WHERE tenant_id = $1 AND id = $2`,
              [row.tenant_id, row.id, String((err as Error).message).slice(0, 500), delaySeconds],
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
}
