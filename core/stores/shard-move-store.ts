import { escapeIdentifier } from 'pg';
import type { Db, DbClient, Queryable } from '../db';
import { inTransaction } from '../db';

/**
 * The SQL of moving a logical shard between databases (ADR 0026, workflows/shard-move.ts): which
 * tables are tenant-owned and in what foreign-key order, the guard trigger that logs and fences the
 * shard's writes (migration 0028), batched copies and catch-up passes, per-table counts and
 * checksums, and deleting a shard's rows. Table and column names come from the catalog, never from
 * a request, and are quoted all the same.
 */

/**
 * `shardOf` (core/shards.ts) in SQL, over a row alias `t`; a row without a tenant (the audit log's
 * platform-level entries) is shard 0's, as its chain is (migration 0019's `audit_log.shard`, the
 * guard since migration 0044, ADR 0043): moving shard 0 carries them with its tenants' rows.
 */
const SHARD_OF_ROW = `coalesce(get_byte(sha256(decode(t.tenant_id::text, 'escape')), 3) % 8, 0)`;

/** The fence's SQLSTATE (migration 0028's guard raises it; core/shard-fence.ts maps it to 503). */
export const SHARD_FENCED_SQLSTATE = 'DGF01';

/** A tenant-owned table as the move copies it. */
export interface ShardTable {
  name: string;
  /** Columns written on copy: every column but generated ones. */
  columns: string[];
  /** Primary key columns, in key order: batches page by it, changes name rows by it. */
  pk: string[];
  /** Identity columns: copied as they are (ids are unique across databases, ADR 0025's blocks), so written with OVERRIDING SYSTEM VALUE. */
  identity: string[];
  /** Tenant-owned tables it references (copied before it). */
  parents: string[];
  /** Whether the shard-move guard trigger is installed. */
  guarded: boolean;
}

const q = escapeIdentifier;
const cols = (names: string[], alias = '') => names.map((c) => `${alias}${q(c)}`).join(', ');
const keyObject = (t: ShardTable, alias: string) => `jsonb_build_object(${t.pk.map((c) => `'${c.replace(/'/g, "''")}', ${alias}.${q(c)}`).join(', ')})`;
const keyMatch = (t: ShardTable, a: string, b: string) => `(${cols(t.pk, `${a}.`)}) = (${cols(t.pk, `${b}.`)})`;

/**
 * Every table of the `public` schema with a `tenant_id` column except `exclude` (the global
 * database's tables), parents before children (foreign keys among them; a self-reference is
 * ignored). A table without a primary key cannot be moved row by row: refused, naming it.
 */
export async function tenantTables(db: Queryable, exclude: readonly string[] = []): Promise<ShardTable[]> {
  const r = await db.query<{ name: string; columns: string[]; pk: string[] | null; parents: string[] | null; identity: string[] | null; guarded: boolean }>(
    `SELECT c.relname AS name,
            (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '') AS columns,
            (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i
               CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
              WHERE i.indrelid = c.oid AND i.indisprimary) AS pk,
            (SELECT array_agg(DISTINCT p.relname::text) FROM pg_constraint f JOIN pg_class p ON p.oid = f.confrelid
              WHERE f.conrelid = c.oid AND f.contype = 'f' AND f.confrelid <> c.oid) AS parents,
            (SELECT array_agg(a.attname::text) FROM pg_attribute a
              WHERE a.attrelid = c.oid AND a.attidentity <> '' AND NOT a.attisdropped) AS identity,
            EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = c.oid AND g.tgname = 'shard_move_guard') AS guarded
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
        AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
      ORDER BY c.relname`,
  );
  const tables = r.rows
    .filter((t) => !exclude.includes(t.name))
    .map((t) => {
      if (!t.pk?.length) throw new Error(`table ${t.name} has a tenant_id but no primary key: a shard move names rows by their primary key`);
      return { name: t.name, columns: t.columns, pk: t.pk, identity: t.identity ?? [], parents: t.parents ?? [], guarded: t.guarded };
    });
  const byName = new Map(tables.map((t) => [t.name, t]));
  const ordered: ShardTable[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (t: ShardTable) => {
    if (state.get(t.name) === 'done') return;
    if (state.get(t.name) === 'visiting') throw new Error(`foreign keys among tenant-owned tables form a cycle through ${t.name}`);
    state.set(t.name, 'visiting');
    for (const p of t.parents) {
      const parent = byName.get(p);
      if (parent) visit(parent);
    }
    state.set(t.name, 'done');
    ordered.push(t);
  };
  for (const t of tables) visit(t);
  return ordered;
}

/**
 * Installs the guard trigger (migration 0028's `shard_move_guard`, the table's primary key as its
 * arguments) on a table that lacks it. CREATE TRIGGER waits for the table's writers; a short lock
 * timeout keeps it from queueing every later writer behind a long transaction (the caller retries).
 */
export async function installGuard(db: Db, t: ShardTable): Promise<void> {
  const args = t.pk.map((c) => `'${c.replace(/'/g, "''")}'`).join(', ');
  await inTransaction(db, async (c) => {
    await c.query(`SET LOCAL lock_timeout = '2s'`);
    await c.query(
      `CREATE OR REPLACE TRIGGER shard_move_guard AFTER INSERT OR UPDATE OR DELETE ON ${q(t.name)} FOR EACH ROW EXECUTE FUNCTION shard_move_guard(${args})`,
    );
  });
}

/** The fence row of a shard in this database, if a move has one. */
export async function findShardFence(db: Queryable, shard: number): Promise<{ moveId: string; state: 'tracking' | 'fenced'; since: Date } | undefined> {
  const r = await db.query<{ move_id: string; state: 'tracking' | 'fenced'; since: Date }>('SELECT move_id, state, since FROM shard_fences WHERE shard = $1', [shard]);
  const row = r.rows[0];
  return row && { moveId: row.move_id, state: row.state, since: row.since };
}

/**
 * Starts logging the shard's changes (state `tracking`) for move `moveId`; a row this move wrote
 * before is kept as it is (a retried or resumed activity). Answers the row, whoever's it is, and
 * the id of the transaction that wrote it (for `olderTransactionsRunning`).
 */
export async function startTracking(db: Db, shard: number, moveId: string): Promise<{ moveId: string; state: string; xid: string }> {
  return inTransaction(db, async (c) => {
    await c.query(`INSERT INTO shard_fences (shard, move_id, state) VALUES ($1, $2, 'tracking') ON CONFLICT (shard) DO NOTHING`, [shard, moveId]);
    const r = await c.query<{ move_id: string; state: string; xid: string }>(
      `SELECT move_id, state, (pg_current_xact_id()::text::bigint % 4294967296)::text AS xid FROM shard_fences WHERE shard = $1`,
      [shard],
    );
    return { moveId: r.rows[0].move_id, state: r.rows[0].state, xid: r.rows[0].xid };
  });
}

/**
 * How many other client sessions of this database still run a transaction (or hold a snapshot)
 * that began before transaction `xid` committed: their writes may have passed the guard before it
 * saw the shard's row, so the copy must wait for them.
 */
export async function olderTransactionsRunning(db: Queryable, xid: string): Promise<number> {
  const r = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
        AND (age(backend_xid) >= age($1::xid) OR age(backend_xmin) >= age($1::xid))`,
    [xid],
  );
  return r.rows[0].n;
}

/**
 * Fences the shard's writes in this database. Takes the fence row FOR UPDATE first: writers hold it
 * FOR KEY SHARE until they commit, so this waits for the ones already past the guard (their changes
 * are then logged) and every later writer sees `fenced`. Gives up after `lockTimeoutMs` (the writers
 * waiting behind it would otherwise wait as long as the slowest transaction). Answers when the
 * fence took effect (the database's clock), also when it already had.
 */
export async function fenceShard(db: Db, shard: number, moveId: string, lockTimeoutMs: number): Promise<Date> {
  return inTransaction(db, async (c) => {
    await c.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.floor(lockTimeoutMs))}`);
    const r = await c.query<{ state: string; since: Date }>('SELECT state, since FROM shard_fences WHERE shard = $1 AND move_id = $2 FOR UPDATE', [shard, moveId]);
    if (!r.rows[0]) throw new Error(`shard ${shard} has no fence row of move ${moveId} (another move, or it was lifted)`);
    if (r.rows[0].state === 'fenced') return r.rows[0].since;
    const u = await c.query<{ since: Date }>(`UPDATE shard_fences SET state = 'fenced', since = clock_timestamp() WHERE shard = $1 RETURNING since`, [shard]);
    return u.rows[0].since;
  });
}

/**
 * Fences the shard in the move's target while the copy is made there: the target's outbox relays
 * skip the copied rows (`claimDueOutboxRows`) until the switch makes the target the shard's home;
 * before, they are the source's to hand on, and a stamp here would differ from the source's row.
 */
export async function fenceIncomingShard(db: Queryable, shard: number, moveId: string): Promise<void> {
  await db.query(`INSERT INTO shard_fences (shard, move_id, state) VALUES ($1, $2, 'fenced') ON CONFLICT (shard) DO NOTHING`, [shard, moveId]);
}

/** Lifts move `moveId`'s fence (or tracking) of the shard and forgets its logged changes. */
export async function liftShardFence(db: Db, shard: number, moveId: string): Promise<boolean> {
  return inTransaction(db, async (c) => {
    const r = await c.query('DELETE FROM shard_fences WHERE shard = $1 AND move_id = $2', [shard, moveId]);
    if (r.rowCount) await c.query('DELETE FROM shard_move_changes WHERE shard = $1', [shard]);
    return (r.rowCount ?? 0) > 0;
  });
}

/** A change the guard logged: a row of `table`, named by its primary key. */
export interface LoggedChange {
  id: string;
  table: string;
  key: string;
}

/** The shard's logged changes after `afterId`, oldest first, at most `limit`. */
export async function loggedChanges(db: Queryable, shard: number, afterId: string, limit: number): Promise<LoggedChange[]> {
  const r = await db.query<{ id: string; tbl: string; key: string }>(
    'SELECT id::text, tbl, key::text FROM shard_move_changes WHERE shard = $1 AND id > $2::bigint ORDER BY id LIMIT $3',
    [shard, afterId, limit],
  );
  return r.rows.map((row) => ({ id: row.id, table: row.tbl, key: row.key }));
}

/** Forgets logged changes once they are replayed (a change logged later by a transaction that took a lower id stays). */
export async function deleteLoggedChanges(db: Queryable, shard: number, ids: string[]): Promise<void> {
  if (ids.length) await db.query('DELETE FROM shard_move_changes WHERE shard = $1 AND id = ANY ($2::bigint[])', [shard, ids]);
}

/** How many logged changes of the shard come after `afterId`. */
export async function countLoggedChanges(db: Queryable, shard: number, afterId: string): Promise<number> {
  const r = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM shard_move_changes WHERE shard = $1 AND id > $2::bigint', [shard, afterId]);
  return r.rows[0].n;
}

/**
 * One batch of the shard's rows of `t`, in primary-key order after `afterKey` (a JSON object of the
 * key's columns; undefined: from the start). Rows are JSON texts (`to_jsonb`), which `upsertRows`
 * writes back exactly (every type round-trips through its text form).
 */
export async function shardRowsBatch(db: Queryable, t: ShardTable, shard: number, afterKey: string | undefined, limit: number): Promise<{ rows: string[]; lastKey?: string }> {
  const order = cols(t.pk, 't.');
  const after = afterKey ? `AND (${order}) > (${cols(t.pk, 'k.')})` : '';
  const from = afterKey ? `${q(t.name)} t, jsonb_populate_record(NULL::${q(t.name)}, $3::jsonb) k` : `${q(t.name)} t`;
  const params: unknown[] = [shard, limit];
  if (afterKey) params.push(afterKey);
  const r = await db.query<{ r: string; k: string }>(
    `SELECT to_jsonb(t)::text AS r, ${keyObject(t, 't')}::text AS k FROM ${from} WHERE ${SHARD_OF_ROW} = $1 ${after} ORDER BY ${order} LIMIT $2`,
    params,
  );
  return { rows: r.rows.map((x) => x.r), lastKey: r.rows.length ? r.rows[r.rows.length - 1].k : undefined };
}

/** The source's current rows of `t` for the given keys (JSON objects), as JSON texts with their keys. */
export async function rowsByKeys(db: Queryable, t: ShardTable, keys: string[]): Promise<Array<{ row: string; key: string }>> {
  if (!keys.length) return [];
  const r = await db.query<{ r: string; k: string }>(
    `SELECT to_jsonb(t)::text AS r, ${keyObject(t, 't')}::text AS k
       FROM ${q(t.name)} t JOIN jsonb_populate_recordset(NULL::${q(t.name)}, $1::jsonb) k ON ${keyMatch(t, 't', 'k')}`,
    [`[${keys.join(',')}]`],
  );
  return r.rows.map((x) => ({ row: x.r, key: x.k }));
}

/**
 * Writes rows (JSON texts of `t`'s rows) into `t`: inserted, or, where the primary key is there
 * already, updated to them. Idempotent, so a batch written twice (a retried activity) is harmless.
 */
export async function upsertRows(db: Queryable, t: ShardTable, rows: string[]): Promise<number> {
  if (!rows.length) return 0;
  const rest = t.columns.filter((c) => !t.pk.includes(c));
  const onConflict = rest.length ? `DO UPDATE SET ${rest.map((c) => `${q(c)} = EXCLUDED.${q(c)}`).join(', ')}` : 'DO NOTHING';
  const overriding = t.identity.length ? 'OVERRIDING SYSTEM VALUE' : '';
  const r = await db.query(
    `INSERT INTO ${q(t.name)} (${cols(t.columns)}) ${overriding}
     SELECT ${cols(t.columns)} FROM jsonb_populate_recordset(NULL::${q(t.name)}, $1::jsonb)
     ON CONFLICT (${cols(t.pk)}) ${onConflict}`,
    [`[${rows.join(',')}]`],
  );
  return r.rowCount ?? 0;
}

/** Deletes the rows of `t` with the given keys (JSON objects). */
export async function deleteRowsByKeys(db: Queryable, t: ShardTable, keys: string[]): Promise<number> {
  if (!keys.length) return 0;
  const r = await db.query(`DELETE FROM ${q(t.name)} t USING jsonb_populate_recordset(NULL::${q(t.name)}, $1::jsonb) k WHERE ${keyMatch(t, 't', 'k')}`, [
    `[${keys.join(',')}]`,
  ]);
  return r.rowCount ?? 0;
}

/** Row count and an order-independent checksum (sum of 60-bit prefixes of each row's MD5) of the shard's rows of `t`. */
export async function shardTableSummary(db: Db, t: ShardTable, shard: number): Promise<{ rows: number; checksum: string }> {
  return inTransaction(db, async (c) => {
    // Timestamps render in the session's time zone: the same on both sides.
    await c.query(`SET LOCAL TimeZone = 'UTC'`);
    const r = await c.query<{ n: string; sum: string }>(
      `SELECT count(*)::text AS n, coalesce(sum(('x' || substr(md5(to_jsonb(t)::text), 1, 15))::bit(60)::bigint::numeric), 0)::text AS sum
         FROM ${q(t.name)} t WHERE ${SHARD_OF_ROW} = $1`,
      [shard],
    );
    return { rows: Number(r.rows[0].n), checksum: r.rows[0].sum };
  });
}

/**
 * A transaction on a copy that does not serve the shard (the move's target before the switch, the
 * source after it) with triggers and foreign-key checks off (`session_replication_role = replica`):
 * while writes go on, a batch may hold a child whose parent was written after the parent's table
 * was copied (the parent comes with a later catch-up pass), and the verify compares the finished
 * copy with the source, whose constraints held. Needs a role that may set that parameter (a
 * superuser, or GRANT SET ON PARAMETER session_replication_role, Postgres 15+).
 */
export async function inUncheckedTransaction<T>(db: Db, fn: (c: DbClient) => Promise<T>): Promise<T> {
  return inTransaction(db, async (c) => {
    await c.query(`SET LOCAL session_replication_role = replica`);
    return fn(c);
  });
}

/**
 * Deletes up to `limit` of the shard's rows of `t` (a copy being dropped), with triggers and
 * foreign-key actions off (`session_replication_role = replica`: the fence and the audit log's
 * append-only guard would refuse; the caller deletes children before parents). Needs a role that
 * may set that parameter (a superuser, or GRANT SET ON PARAMETER session_replication_role).
 */
export async function deleteShardRowsBatch(db: Db, t: ShardTable, shard: number, limit: number): Promise<number> {
  return inUncheckedTransaction(db, async (c) => {
    const r = await c.query(
      `DELETE FROM ${q(t.name)} WHERE ctid = ANY (ARRAY(SELECT t.ctid FROM ${q(t.name)} t WHERE ${SHARD_OF_ROW} = $1 LIMIT $2))`,
      [shard, limit],
    );
    return r.rowCount ?? 0;
  });
}

