import client from 'prom-client';
import type { Db } from '../core/db';
import { OUTBOX_TABLES, outboxBacklog, type OutboxTable } from '../core/stores/outbox-store';
import { outboxLabel } from '../core/outbox-drainer';

/**
 * The transactional outboxes' health (ADR 0028): what waits (rows and the oldest one's age, read
 * from Postgres when scraped, so every relay instance reports the same shared backlog). How long a
 * row took to be handed on and what became of each claimed row are recorded by the relay itself
 * (core/outbox-drainer.ts), in whichever process drains it. The `outbox` label is the table.
 */

/** Longest a scrape waits for Postgres: a scrape must answer even while the database does not. */
const BACKLOG_TIMEOUT_MS = 2000;

/**
 * Registers the backlog gauges (`dotgit_outbox_pending_rows`, `dotgit_outbox_oldest_pending_age_seconds`)
 * of the outboxes in `dbs` (every database outbox rows are written to: the shard databases, ADR
 * 0025), read at each scrape: rows summed, the oldest of all. When a database does not answer in
 * time the gauges keep their last values and `dotgit_outbox_backlog_errors_total` counts the miss.
 */
export function registerOutboxBacklog(dbs: () => Db[], registers: client.Registry[] = [client.register]): void {
  const errors = new client.Counter({ name: 'dotgit_outbox_backlog_errors_total', help: 'Scrapes that could not read the outbox backlog from Postgres', registers });
  let latest: Promise<Map<OutboxTable, { pending: number; oldestSeconds: number }>> | undefined;
  // Both gauges are collected in one scrape: one round of queries serves both.
  const read = () =>
    (latest ??= (async () => {
      try {
        const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), BACKLOG_TIMEOUT_MS).unref());
        const all = await Promise.race([Promise.all(dbs().flatMap((db) => OUTBOX_TABLES.map(async (t) => [t, await outboxBacklog(db, t)] as const))), timeout]);
        const backlog = new Map<OutboxTable, { pending: number; oldestSeconds: number }>(OUTBOX_TABLES.map((t) => [t, { pending: 0, oldestSeconds: 0 }]));
        for (const [t, b] of all) {
          const sum = backlog.get(t)!;
          sum.pending += b.pending;
          sum.oldestSeconds = Math.max(sum.oldestSeconds, b.oldestSeconds);
        }
        return backlog;
      } catch {
        errors.inc();
        return new Map();
      } finally {
        setImmediate(() => (latest = undefined));
      }
    })());
  new client.Gauge({
    name: 'dotgit_outbox_pending_rows',
    help: 'Outbox rows committed but not yet handed on to Temporal, by outbox',
    labelNames: ['outbox'],
    registers,
    async collect() {
      for (const [t, b] of await read()) this.set({ outbox: outboxLabel(t) }, b.pending);
    },
  });
  new client.Gauge({
    name: 'dotgit_outbox_oldest_pending_age_seconds',
    help: 'Age of the oldest outbox row not yet handed on (0 when none waits), by outbox',
    labelNames: ['outbox'],
    registers,
    async collect() {
      for (const [t, b] of await read()) this.set({ outbox: outboxLabel(t) }, b.oldestSeconds);
    },
  });
}
