import client from 'prom-client';
import { inTransaction, type Db, type DbClient } from './db';
import type { Logger } from './logger';
import { withLogContext, workLogFields, type LogFields } from './log-context';
import { retryWhenFenced } from './shard-fence';
import { claimDueOutboxRows, retryOutboxRowLater, stampOutboxRow, type OutboxRow } from './stores/outbox-store';

export type { OutboxRow } from './stores/outbox-store';

/*
 * The transactional outboxes' relay logic, shared by the processes that drain them: each process
 * drains the outboxes it writes (the git-server: pushes' rows; the api: hand-started runs'), so no
 * service writes another's table (ADR 0024). Relay metrics (ADR 0028) are recorded here, so every
 * relaying process reports them; the backlog gauges are read from Postgres by the git-server.
 */

/** The outbox label of a table: `push_outbox` → `push`. */
export const outboxLabel = (table: string): string => table.replace(/_outbox$/, '');

const relayLatency = new client.Histogram({
  name: 'dotgit_outbox_relay_latency_seconds',
  help: "Time from an outbox row's commit to its hand-on to Temporal (the database's clock), by outbox",
  labelNames: ['outbox'],
  buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800],
});

const rowsRelayed = new client.Counter({
  name: 'dotgit_outbox_rows_total',
  help: 'Outbox rows a relay claimed, by outbox and outcome (handed_on, failed: for good, retried: due again after a backoff)',
  labelNames: ['outbox', 'outcome'],
});

/** Records one claimed row's outcome; `latencySeconds` for a row handed on. */
export function recordOutboxRow(table: string, outcome: 'handed_on' | 'failed' | 'retried', latencySeconds?: number): void {
  const outbox = outboxLabel(table);
  rowsRelayed.inc({ outbox, outcome });
  if (latencySeconds !== undefined) relayLatency.observe({ outbox }, latencySeconds);
}

/**
 * What an outbox row is about, for the lines written while it is handed on (issue 14 item 5): its
 * payload's run, tenant and repository (a pipeline start's PipelineInput, a replication's
 * RepoTarget), or what the workflow it starts is named after (`webhook:push:<tenant>:<repo>:…`).
 */
export function outboxRowLogFields(row: OutboxRow): LogFields {
  const workflowId = typeof row.workflow_id === 'string' ? row.workflow_id : typeof row.run_id === 'string' ? row.run_id : undefined;
  return workLogFields(row.payload, workflowId);
}

/** A relay drains one database whatever its placements: nothing to re-read between tries. */
const NO_ROUTER = { refresh: async () => undefined };

/** What became of one outbox row: handed on, or failed (permanently: never retried; else retried with backoff). */
export type RowOutcome = 'done' | { permanent: boolean; message: string };

export interface DrainOptions {
  /** Rows claimed per transaction. Default 20. */
  batch?: number;
  /** Extra work in the claiming transaction when a row fails for good (e.g. failing its run). */
  onPermanent?: (client: DbClient, row: OutboxRow, message: string) => Promise<void>;
  /**
   * Runs in the claiming transaction before the rows are handed on (e.g. taking locks held until
   * they are stamped); answers the outcome of the rows it settles itself, which are not handed on.
   */
  decide?: (client: DbClient, rows: OutboxRow[]) => Promise<Map<OutboxRow, RowOutcome>>;
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
    // A batch whose stamps a shard move's fence refused (ADR 0026) is rolled back and claimed again:
    // the claim skips fenced shards' rows, which the shard's new database relays after the switch.
    const handedNow = await retryWhenFenced(NO_ROUTER, () => inTransaction(db, async (client) => {
      const rows = await claimDueOutboxRows(client, table, o.batch ?? 20);
      if (rows.length === 0) return undefined;
      const decided = (await o.decide?.(client, rows)) ?? new Map<OutboxRow, RowOutcome>();
      let n = 0;
      // Together: one at a time, a burst of rows waited one Temporal round trip per row ahead of it.
      // Each row's hand-on (and its failure's handling) in the row's log context: its lines name its repository and run.
      const outcomes = await Promise.all(
        rows.map((row) => decided.get(row) ?? withLogContext(outboxRowLogFields(row), () => handOn(row)).catch((err: Error): RowOutcome => ({ permanent: false, message: String(err.message) }))),
      );
      for (const [i, row] of rows.entries()) {
        const outcome = outcomes[i]!;
        if (outcome === 'done' || outcome.permanent) {
          const error = outcome === 'done' ? null : outcome.message.slice(0, 500);
          const latency = await stampOutboxRow(client, table, row, error);
          if (error === null) {
            n++;
            recordOutboxRow(table, 'handed_on', latency);
          } else {
            await withLogContext(outboxRowLogFields(row), async () => o.onPermanent?.(client, row, error));
            recordOutboxRow(table, 'failed');
          }
        } else {
          const delaySeconds = Math.min(2 ** Math.min(Number(row.attempts), 8), 300);
          await retryOutboxRowLater(client, table, row, outcome.message.slice(0, 500), delaySeconds);
          recordOutboxRow(table, 'retried');
        }
      }
      return n;
    }));
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
