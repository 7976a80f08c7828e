import { inTransaction, type Db, type DbClient } from '../core/db';
import type { Logger } from '../core/logger';
import { claimDueOutboxRows, retryOutboxRowLater, stampOutboxRow, type OutboxRow } from '../core/stores/outbox-store';
import { recordOutboxRow } from './outbox-metrics';

export type { OutboxRow } from '../core/stores/outbox-store';

/** What became of one outbox row: handed on, or failed (permanently: never retried; else retried with backoff). */
export type RowOutcome = 'done' | { permanent: boolean; message: string };

export interface DrainOptions {
  /** Rows claimed per transaction. Default 20. */
  batch?: number;
  /** Extra work in the claiming transaction when a row fails for good (e.g. failing its run). */
  onPermanent?: (client: DbClient, row: OutboxRow, message: string) => Promise<void>;
}

/**
 * One pass over a transactional outbox table (outbox-store): claims due rows with SKIP LOCKED
 * (several relays may run), hands each batch on together, and stamps each row: done, failed for
 * good, or due again after an exponential backoff (2^attempts s, at most 5 min). One bad row never
 * holds up the rows behind it.
 */
export async function drainOutbox(db: Db, table: string, handOn: (row: OutboxRow) => Promise<RowOutcome>, o: DrainOptions = {}): Promise<number> {
  let handed = 0;
  for (;;) {
    // One transaction per batch; an empty claim ends the pass.
    const handedNow = await inTransaction(db, async (client) => {
      const rows = await claimDueOutboxRows(client, table, o.batch ?? 20);
      if (rows.length === 0) return undefined;
      let n = 0;
      // Together: one at a time, a burst of rows waited one Temporal round trip per row ahead of it.
      const outcomes = await Promise.all(rows.map((row) => handOn(row).catch((err: Error): RowOutcome => ({ permanent: false, message: String(err.message) }))));
      for (const [i, row] of rows.entries()) {
        const outcome = outcomes[i]!;
        if (outcome === 'done' || outcome.permanent) {
          const error = outcome === 'done' ? null : outcome.message.slice(0, 500);
          const latency = await stampOutboxRow(client, table, row, error);
          if (error === null) {
            n++;
            recordOutboxRow(table, 'handed_on', latency);
          } else {
            await o.onPermanent?.(client, row, error);
            recordOutboxRow(table, 'failed');
          }
        } else {
          const delaySeconds = Math.min(2 ** Math.min(Number(row.attempts), 8), 300);
          await retryOutboxRowLater(client, table, row, outcome.message.slice(0, 500), delaySeconds);
          recordOutboxRow(table, 'retried');
        }
      }
      return n;
    });
    if (handedNow === undefined) return handed;
    handed += handedNow;
  }
}

/** gRPC INVALID_ARGUMENT (3) or FAILED_PRECONDITION (9): retrying the same request cannot succeed. */
export function isPermanentRefusal(err: unknown): boolean {
  const code = (err as { code?: number; cause?: { code?: number } }).code ?? (err as { cause?: { code?: number } }).cause?.code;
  return code === 3 || code === 9;
}

/**
 * Runs `pass` every `pollMs`, and at once when kicked (after a push commits its rows); a kick
 * during a pass runs another pass right after it. Passes never overlap.
 */
export class PollingRelay {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(
    private readonly name: string,
    private readonly pass: () => Promise<unknown>,
    private readonly log: Logger,
    private readonly pollMs = 1000,
  ) {}

  start(): void {
    this.schedule(0);
  }

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
      this.running = this.pass()
        .then(() => undefined)
        .catch((err) => this.log.warn({ err }, `${this.name} pass failed`))
        .finally(() => {
          this.running = undefined;
          const next = this.again ? 0 : this.pollMs;
          this.again = false;
          this.schedule(next);
        });
    }, ms);
  }
}
