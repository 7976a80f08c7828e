import { Context } from '@temporalio/activity';
import client from 'prom-client';
import type { Db } from '../core/db';
import type { ShardRouter } from '../core/shard-router';
import { liveDatabases } from '../core/shard-databases';
import type { ShardScope } from '../core/stores/shard-scope';
import { pruneRestoreCopies } from '../core/backup-restore';
import { clearRestoreDirs, listRestoreStates } from '../core/stores/backups-store';
import { deleteOldIdempotencyKeys, idempotencyKeysTableExists } from '../core/stores/idempotency-store';
import { deleteHandedOnOutboxRows, OUTBOX_TABLES } from '../core/stores/outbox-store';
import { deleteOldDeliveries } from '../core/stores/webhooks-store';
import { activeRunIdsFromDb, PERIODIC_PRUNE_MIN_AGE_MS, pruneOrphanedSandboxState } from './sandbox/orphans';

export { OUTBOX_TABLES };

/** How long an `Idempotency-Key` is remembered (its answer replayed): 24 hours, as Stripe does. */
export const IDEMPOTENCY_KEY_TTL_HOURS = 24;

/** Rows deleted per statement: short transactions, no long lock on a busy table. */
const BATCH = 5000;

/**
 * A restore or drill recorded as running longer than this is not running any more (its longest
 * activity may take 6 h × 5 attempts, workflows/backup.ts); its copy is then aged like the others.
 */
const RESTORE_MAX_RUNNING_HOURS = 48;

const removedTotal = new client.Counter({
  name: 'dotgit_housekeeping_removed_total',
  help: 'What the hourly housekeeping removed: rows per table, restore copies, sandbox state',
  labelNames: ['what'],
});

export interface HousekeepingDeps {
  /** The global database (idempotency keys, restores); every database when there is no router. */
  db: Db;
  /** Outboxes, delivery logs and runs live in every shard database (ADR 0025). */
  router?: ShardRouter;
  /** `dataPaths(config).restores`: where restores and drills put their copies. */
  restoresDir: string;
  /** `dataPaths(config).sandbox` and `.workspaces` of this worker. */
  sandboxStateDir: string;
  workspacesDir: string;
  outboxRetentionDays: number;
  deliveryLogRetentionDays: number;
  /** Newest delivery-log rows each webhook keeps whatever their age. */
  deliveryLogKeep: number;
  restoreCopyRetentionDays: number;
}

/** Rows deleted per table; `idempotency_keys: null` when that table does not exist (yet). */
export type RowsPruned = Record<(typeof OUTBOX_TABLES)[number] | 'webhook_deliveries', number> & { idempotency_keys: number | null };

export interface SandboxPruned {
  removed: number;
}

/** What one round of housekeeping did; `failed` names each part that failed and why. */
export interface HousekeepingResult {
  rows?: RowsPruned;
  restoreCopies?: { removed: string[]; kept: number };
  sandbox?: SandboxPruned;
  failed: string[];
}

const DAY_SECONDS = 86_400;

/** Activities of the hourly housekeeping (workflows/maintenance.ts). Each is safe to run again. */
export function createHousekeepingActivities(deps: HousekeepingDeps) {
  const { db } = deps;
  // Tenant-owned rows are pruned in every database of the shard map (ADR 0025), each for the shards
  // placed on it now: a moved shard's old copy, fenced in its grace period, is the clean-up's (ADR 0043).
  const shardDbs = () => (deps.router ? deps.router.databases().map((d) => d.db) : [db]);
  const sumOver = async (fn: (d: Db, shards: ShardScope) => Promise<number>) =>
    (await Promise.all((deps.router ? liveDatabases(deps.router) : [{ db, scope: null }]).map((d) => fn(d.db, d.scope)))).reduce((a, b) => a + b, 0);

  /** Deletes batch after batch (a store's one-batch delete) until a batch comes back short. */
  async function deleteInBatches(table: string, deleteBatch: (batch: number) => Promise<number>): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await deleteBatch(BATCH);
      total += n;
      Context.current().heartbeat(`${table}: ${total}`);
      if (n < BATCH) return total;
    }
  }

  return {
    /**
     * Outbox rows handed on more than the outbox retention ago (pending rows stay whatever their
     * age: they are pushes still to start); delivery-log rows older than their retention beyond
     * each webhook's newest `deliveryLogKeep`; idempotency keys older than 24 hours.
     */
    async pruneRows(): Promise<RowsPruned> {
      const counts: Partial<RowsPruned> = {};
      for (const table of OUTBOX_TABLES) {
        counts[table] = await sumOver((d, shards) => deleteInBatches(table, (batch) => deleteHandedOnOutboxRows(d, table, deps.outboxRetentionDays * DAY_SECONDS, batch, shards)));
      }
      // The keep-N bound: a hook's newest N rows stay whatever their age.
      counts.webhook_deliveries = await sumOver((d, shards) =>
        deleteInBatches('webhook_deliveries', (batch) => deleteOldDeliveries(d, deps.deliveryLogRetentionDays * DAY_SECONDS, deps.deliveryLogKeep, batch, shards)),
      );
      // The table comes with the api's Idempotency-Key support (migrations/0012); until then, nothing to do.
      counts.idempotency_keys = (await idempotencyKeysTableExists(db))
        ? await deleteInBatches('idempotency_keys', (batch) => deleteOldIdempotencyKeys(db, IDEMPOTENCY_KEY_TTL_HOURS, batch))
        : null;
      for (const [table, n] of Object.entries(counts)) if (n) removedTotal.inc({ what: table }, n);
      return counts as RowsPruned;
    },

    /** Restore copies (`<restoresDir>/<id>`) that ended more than the retention ago; see pruneRestoreCopies. */
    async pruneRestoreCopies(): Promise<{ removed: string[]; kept: number }> {
      const rows = await listRestoreStates(db, RESTORE_MAX_RUNNING_HOURS);
      const running = new Set(rows.filter((r) => r.status === 'running' && !r.running_long).map((r) => r.id));
      const finishedAt = new Map(rows.filter((r) => r.finished_at).map((r) => [r.id, r.finished_at!]));
      const result = await pruneRestoreCopies({ restoresDir: deps.restoresDir, olderThanMs: deps.restoreCopyRetentionDays * DAY_SECONDS * 1000, finishedAt, running });
      // The api answers a restore's `dir`; once the copy is gone there is none to point at.
      if (result.removed.length) await clearRestoreDirs(db, result.removed);
      removedTotal.inc({ what: 'restore_copies' }, result.removed.length);
      return result;
    },

    /**
     * Sandbox state no step of this worker owns (bundles, bubblewrap runs, workspaces of ended runs,
     * runsc containers) untouched for longer than any step may run; the same pruning as at worker start.
     */
    async pruneSandboxState(): Promise<SandboxPruned> {
      const r = await pruneOrphanedSandboxState({
        stateDir: deps.sandboxStateDir,
        workspacesDir: deps.workspacesDir,
        olderThanMs: PERIODIC_PRUNE_MIN_AGE_MS,
        activeRunIds: activeRunIdsFromDb(shardDbs()),
      });
      const removed = r.containers.length + r.bundles.length + r.bwrapRuns.length + r.workspaces.length;
      removedTotal.inc({ what: 'sandbox_state' }, removed);
      return { removed };
    },
  };
}

export type HousekeepingActivities = ReturnType<typeof createHousekeepingActivities>;
