import type { Queryable } from '../db';

/**
 * The shard map's live state in the global database (migration 0025, ADR 0025): `shard_placements`
 * (which database holds each logical shard now) and `shard_databases` (each database's block of
 * identity values). Also the per-database statement that raises identity sequences into a block.
 */

/** Live placements, shard → database name; an absent table (before migration 0025) has none. */
export async function readShardPlacements(q: Queryable): Promise<Map<number, string>> {
  const exists = await q.query<{ t: string | null }>("SELECT to_regclass('shard_placements')::text AS t");
  if (!exists.rows[0].t) return new Map();
  const { rows } = await q.query<{ shard: number; database: string }>('SELECT shard, database FROM shard_placements ORDER BY shard');
  return new Map(rows.map((r) => [Number(r.shard), r.database]));
}

/** Writes the initial placement of shards that have none yet (a row once written is the move's to change). */
export async function seedShardPlacements(q: Queryable, shards: readonly string[]): Promise<void> {
  await q.query(
    `INSERT INTO shard_placements (shard, database)
     SELECT s - 1, d FROM unnest($1::text[]) WITH ORDINALITY AS t(d, s)
     ON CONFLICT (shard) DO NOTHING`,
    [shards],
  );
}

/** Places one shard on a database (what a shard move's switch writes); answers the previous database. */
export async function setShardPlacement(q: Queryable, shard: number, database: string): Promise<string | undefined> {
  const before = await q.query<{ database: string }>('SELECT database FROM shard_placements WHERE shard = $1 FOR UPDATE', [shard]);
  await q.query(
    `INSERT INTO shard_placements (shard, database) VALUES ($1, $2)
     ON CONFLICT (shard) DO UPDATE SET database = EXCLUDED.database, updated_at = now()`,
    [shard, database],
  );
  return before.rows[0]?.database;
}

/**
 * The identity block of a database, allocating the next free one on first sight (`global` is
 * always 0). Serialised by a table lock, so call it in a transaction: allocations happen once per
 * database, at migration time.
 */
export async function ensureIdBlock(q: Queryable, name: string, isGlobal: boolean): Promise<number> {
  await q.query('LOCK TABLE shard_databases IN SHARE ROW EXCLUSIVE MODE');
  await q.query(
    `INSERT INTO shard_databases (name, id_block)
     VALUES ($1, CASE WHEN $2::boolean THEN 0 ELSE (SELECT coalesce(max(id_block), 0) + 1 FROM shard_databases) END)
     ON CONFLICT (name) DO NOTHING`,
    [name, isGlobal],
  );
  return Number((await q.query<{ id_block: number }>('SELECT id_block FROM shard_databases WHERE name = $1', [name])).rows[0].id_block);
}

/**
 * Raises every identity sequence of this database's schema to at least `base` (never lowers one),
 * so its new rows take ids of its own block. Run on the database itself after each migration run
 * (a migration may add an identity column, whose sequence starts at 1). Answers how many it raised.
 */
export async function raiseIdentitySequences(q: Queryable, base: number): Promise<number> {
  if (base <= 0) return 0;
  const r = await q.query(
    `SELECT setval(s.seq::regclass, $1, false)
       FROM (SELECT pg_get_serial_sequence(format('%I.%I', table_schema, table_name), column_name) AS seq
               FROM information_schema.columns
              WHERE table_schema = current_schema() AND is_identity = 'YES') s
      WHERE coalesce(pg_sequence_last_value(s.seq::regclass), 0) < $1`,
    [base],
  );
  return r.rowCount ?? 0;
}
