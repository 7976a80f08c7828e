import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Redis } from 'ioredis';
import { inTransaction, type Db } from '../core/db';
import type { ShardRouter } from '../core/shard-router';
import { SHARD_PLACEMENT_CHANNEL, type ShardMoveInput, type ShardTableCheck } from '../core/shard-moves';
import { SHARD_COUNT } from '../core/shards';
import { databaseNow } from '../core/stores/server-store';
import { setShardPlacement } from '../core/stores/shard-placements-store';
import {
  deleteRowsByKeys,
  deleteShardRowsBatch,
  fenceIncomingShard,
  fenceShard,
  findShardFence,
  inUncheckedTransaction,
  installGuard,
  liftShardFence,
  loggedChanges,
  countLoggedChanges,
  deleteLoggedChanges,
  olderTransactionsRunning,
  rowsByKeys,
  shardRowsBatch,
  shardTableSummary,
  startTracking,
  tenantTables,
  upsertRows,
  type ShardTable,
} from '../core/stores/shard-move-store';

/**
 * Tables with a `tenant_id` that live in the global database, not in the tenant's shard (ADR 0025:
 * users and tokens are looked up before the tenant is known): a shard move leaves them alone.
 */
export const GLOBAL_TENANT_TABLES = ['users', 'tokens'];

export interface ShardMoveDeps {
  router: ShardRouter;
  /** Where the switch is announced (SHARD_PLACEMENT_CHANNEL); absent: processes learn it from the fence or their next refresh. */
  redis?: Redis;
  /** Logged changes one catch-up pass replays at most. Default 5000. */
  passChanges?: number;
  /** How long the fence may wait for writers already past the guard before it gives up (and is retried). Default 3000. */
  fenceLockTimeoutMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Between batches: a cancelled attempt (its worker shutting down) stops here and is retried elsewhere, from its last heartbeat. */
function stopIfCancelled(what: string): void {
  const signal = Context.current().cancellationSignal;
  if (signal.aborted) throw new Error(`${what} interrupted (${String(signal.reason ?? 'cancelled')}); the retry continues from the last heartbeat`);
}

/**
 * Activities of moving a logical shard (workflows/shard-move.ts, ADR 0026). Every one is safe to
 * run again (a retry, or a worker killed mid-way): copies upsert, the change log is replayed from a
 * cursor the workflow keeps, the fence and the switch check whose they are.
 */
export function createShardMoveActivities(deps: ShardMoveDeps) {
  const passChanges = deps.passChanges ?? 5000;

  function database(name: string): Db {
    const d = deps.router.databases().find((x) => x.name === name);
    if (!d) throw ApplicationFailure.nonRetryable(`database "${name}" is not in this worker's shard map (DOTGIT_SHARD_MAP)`, 'UnknownDatabase');
    return d.db;
  }
  const moveId = (i: ShardMoveInput) => `shard-move:${i.shard}:${i.from}->${i.to}`;
  const tables = async (i: ShardMoveInput) => tenantTables(database(i.from), GLOBAL_TENANT_TABLES);
  const byName = (ts: ShardTable[]) => new Map(ts.map((t) => [t.name, t]));

  /** Deletes every row of the shard from `db`, children first, in batches. */
  async function deleteShard(db: Db, ts: ShardTable[], shard: number, batch: number): Promise<number> {
    let removed = 0;
    for (const t of [...ts].reverse()) {
      for (;;) {
        const n = await deleteShardRowsBatch(db, t, shard, batch);
        removed += n;
        Context.current().heartbeat({ table: t.name, removed });
        stopIfCancelled('deleting the shard copy');
        if (n < batch) break;
      }
    }
    return removed;
  }

  /**
   * One catch-up pass: replays up to `passChanges` logged changes into the target, then deletes them
   * from the log. The log is consumed, not read from a cursor: change ids are taken when a row is
   * written but become visible when its transaction commits, so a transaction with a lower id can
   * commit after a pass read higher ones (seen under load: a cursor skipped those rows).
   */
  async function replay(i: ShardMoveInput, afterId: string): Promise<{ applied: number; cursor: string; remaining: number }> {
    const source = database(i.from);
    const target = database(i.to);
    const ts = await tables(i);
    const changes = await loggedChanges(source, i.shard, '0', passChanges);
    if (!changes.length) return { applied: 0, cursor: afterId, remaining: 0 };
    const keys = new Map<string, Set<string>>();
    for (const c of changes) {
      if (!keys.has(c.table)) keys.set(c.table, new Set());
      keys.get(c.table)!.add(c.key);
    }
    const known = byName(ts);
    for (const name of keys.keys()) if (!known.has(name)) throw new Error(`a change of table ${name} was logged, but it is not a tenant-owned table of ${i.from}`);
    // Read the source's rows now; a row changed after this read has a later log entry (next pass).
    const present = new Map<string, Array<{ row: string; key: string }>>();
    for (const t of ts) if (keys.has(t.name)) present.set(t.name, await rowsByKeys(source, t, [...keys.get(t.name)!]));
    await inUncheckedTransaction(target, async (c) => {
      for (const t of ts) if (present.has(t.name)) await upsertRows(c, t, present.get(t.name)!.map((r) => r.row));
      for (const t of [...ts].reverse()) {
        if (!keys.has(t.name)) continue;
        const there = new Set(present.get(t.name)!.map((r) => r.key));
        await deleteRowsByKeys(c, t, [...keys.get(t.name)!].filter((k) => !there.has(k)));
      }
    });
    await deleteLoggedChanges(source, i.shard, changes.map((c) => c.id));
    const cursor = changes[changes.length - 1].id;
    return { applied: changes.length, cursor, remaining: await countLoggedChanges(source, i.shard, '0') };
  }

  return {
    /**
     * Checks the move, installs the guard on every tenant-owned table of the source, starts logging
     * the shard's changes, waits until every transaction older than that has ended (a write of one
     * could have passed the guard unlogged), and empties the target of the shard's rows (leftovers
     * of an earlier failed move: the target does not serve the shard).
     */
    async prepareShardMove(i: ShardMoveInput): Promise<{ tables: string[] }> {
      if (!Number.isInteger(i.shard) || i.shard < 0 || i.shard >= SHARD_COUNT) throw ApplicationFailure.nonRetryable(`not a logical shard: ${i.shard}`, 'MoveRefused');
      if (i.from === i.to) throw ApplicationFailure.nonRetryable(`shard ${i.shard} is already on database "${i.to}"`, 'MoveRefused');
      await deps.router.refresh();
      const source = database(i.from);
      const target = database(i.to);
      const current = deps.router.databases().find((d) => d.shards.includes(i.shard))?.name;
      const fence = await findShardFence(source, i.shard);
      if (current !== i.from && !(fence?.moveId === moveId(i))) {
        throw ApplicationFailure.nonRetryable(`shard ${i.shard} is on database "${current}", not "${i.from}"`, 'MoveRefused');
      }
      const ts = await tables(i);
      for (const t of ts) {
        for (let attempt = 1; !t.guarded; attempt++) {
          try {
            await installGuard(source, t);
            t.guarded = true;
          } catch (err) {
            // lock_timeout: a long transaction holds the table; try again shortly (it ends, or Temporal retries us).
            if ((err as { code?: string }).code !== '55P03' || attempt >= 10) throw err;
            Context.current().heartbeat({ installing: t.name, attempt });
            await sleep(500);
          }
        }
      }
      const tracking = await startTracking(source, i.shard, moveId(i));
      if (tracking.moveId !== moveId(i)) throw ApplicationFailure.nonRetryable(`shard ${i.shard} is already being moved (${tracking.moveId})`, 'MoveConflict');
      const deadline = Date.now() + 120_000;
      while ((await olderTransactionsRunning(source, tracking.xid)) > 0) {
        if (Date.now() > deadline) throw new Error(`transactions older than the start of the move are still open on "${i.from}" after 120 s`);
        Context.current().heartbeat({ waiting: 'older transactions' });
        await sleep(200);
      }
      await deleteShard(target, ts, i.shard, i.batchRows);
      // The target's relays leave the copied outbox rows alone until the switch (lifted there).
      await fenceIncomingShard(target, i.shard, moveId(i));
      return { tables: ts.map((t) => t.name) };
    },

    /**
     * The bulk copy: every tenant-owned table in foreign-key order, the shard's rows in primary-key
     * batches, upserted into the target. Heartbeats where it is, so a retry (worker killed)
     * continues from the last batch instead of starting over.
     */
    async copyShard(i: ShardMoveInput): Promise<{ rows: number; seconds: number; resumedFrom: number }> {
      const source = database(i.from);
      const target = database(i.to);
      const ts = await tables(i);
      const started = Date.now();
      const resumed = Context.current().info.heartbeatDetails as { table: number; lastKey?: string; rows: number; ms: number } | undefined;
      let rows = resumed?.rows ?? 0;
      const before = resumed?.ms ?? 0;
      for (let ti = resumed?.table ?? 0; ti < ts.length; ti++) {
        const t = ts[ti];
        let lastKey = resumed && ti === resumed.table ? resumed.lastKey : undefined;
        for (;;) {
          const batch = await shardRowsBatch(source, t, i.shard, lastKey, i.batchRows);
          if (!batch.rows.length) break;
          await inUncheckedTransaction(target, (c) => upsertRows(c, t, batch.rows));
          rows += batch.rows.length;
          lastKey = batch.lastKey;
          Context.current().heartbeat({ table: ti, lastKey, rows, ms: before + Date.now() - started });
          stopIfCancelled('the copy');
          if (batch.rows.length < i.batchRows) break;
        }
        Context.current().heartbeat({ table: ti + 1, rows, ms: before + Date.now() - started });
      }
      return { rows, seconds: (before + Date.now() - started) / 1000, resumedFrom: resumed?.rows ?? 0 };
    },

    /** One catch-up pass (see `replay`); the workflow repeats it until few changes remain. `afterId` is the previous pass's last id, for the history only: the log is consumed. */
    async catchUpShard(i: ShardMoveInput & { afterId: string }): Promise<{ applied: number; cursor: string; remaining: number }> {
      return replay(i, i.afterId);
    },

    /** Fences the shard's writes on the source (the guard refuses them from now on); answers when, in ms since the epoch (the source's clock). */
    async fenceShardWrites(i: ShardMoveInput): Promise<{ fencedAt: number }> {
      const since = await fenceShard(database(i.from), i.shard, moveId(i), deps.fenceLockTimeoutMs ?? 3000);
      return { fencedAt: since.getTime() };
    },

    /** Row counts and checksums of every table's rows of the shard, source against target. */
    async verifyShard(i: ShardMoveInput): Promise<{ ok: boolean; tables: ShardTableCheck[] }> {
      const source = database(i.from);
      const target = database(i.to);
      const ts = await tables(i);
      const checks = await Promise.all(
        ts.map(async (t) => {
          const [s, d] = await Promise.all([shardTableSummary(source, t, i.shard), shardTableSummary(target, t, i.shard)]);
          return { table: t.name, sourceRows: s.rows, targetRows: d.rows, sourceChecksum: s.checksum, targetChecksum: d.checksum, ok: s.rows === d.rows && s.checksum === d.checksum };
        }),
      );
      return { ok: checks.every((c) => c.ok), tables: checks };
    },

    /**
     * The switch: the shard's placement in the global database becomes the target (only if it still
     * names the source), announced on SHARD_PLACEMENT_CHANNEL; this worker's router re-reads it.
     * Answers when the switch was visible, in ms since the epoch (the source's clock, as the fence's).
     */
    async switchShard(i: ShardMoveInput): Promise<{ switchedAt: number }> {
      await inTransaction(deps.router.global, async (c) => {
        const before = await setShardPlacement(c, i.shard, i.to);
        if (before !== undefined && before !== i.from && before !== i.to) {
          throw ApplicationFailure.nonRetryable(`shard ${i.shard} is placed on "${before}", not "${i.from}": not switched`, 'MoveConflict');
        }
      });
      // The target is the shard's home now: its relays take the shard's outbox rows from here on.
      await liftShardFence(database(i.to), i.shard, moveId(i));
      await deps.redis?.publish(SHARD_PLACEMENT_CHANNEL, JSON.stringify({ shard: i.shard, database: i.to })).catch(() => undefined);
      await deps.router.refresh().catch(() => undefined);
      return { switchedAt: (await databaseNow(database(i.from))).getTime() };
    },

    /**
     * Undoes a move that failed before its switch: the fence (or change logging) is lifted and the
     * target's copy deleted; the placement was never changed. A move whose switch did commit (its
     * activity failed after it) is not undone: answers false and the workflow carries on.
     */
    async rollBackShardMove(i: ShardMoveInput): Promise<{ rolledBack: boolean }> {
      await deps.router.refresh();
      if (deps.router.databases().find((d) => d.shards.includes(i.shard))?.name === i.to) return { rolledBack: false };
      await liftShardFence(database(i.from), i.shard, moveId(i));
      await liftShardFence(database(i.to), i.shard, moveId(i));
      const ts = await tables(i);
      await deleteShard(database(i.to), ts, i.shard, i.batchRows);
      return { rolledBack: true };
    },

    /** Deletes the shard's rows from one database: the old copy after the grace period, or the target's after a failed move. */
    async dropShardCopy(i: ShardMoveInput & { database: string }): Promise<{ rows: number }> {
      const ts = await tables(i);
      return { rows: await deleteShard(database(i.database), ts, i.shard, i.batchRows) };
    },

    /** Lifts the fence (or the change logging) of this move on the source and forgets its change log. */
    async liftShardFence(i: ShardMoveInput): Promise<void> {
      await liftShardFence(database(i.from), i.shard, moveId(i));
      // The target's, if a switch committed and its activity failed before lifting it.
      await liftShardFence(database(i.to), i.shard, moveId(i));
    },
  };
}

export type ShardMoveActivities = ReturnType<typeof createShardMoveActivities>;
