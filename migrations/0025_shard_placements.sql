-- phase: expand
-- Issue 12 item 2 (ADR 0025): the live placement of the 8 logical shards, in the global database.
-- DOTGIT_SHARD_MAP (core/config.ts) gives each shard's initial database; once a row exists here
-- for a shard it wins over the map (an online shard move, item 3, rewrites it and every process
-- re-reads it). The table exists in every database (migrations run everywhere); only the global
-- database's copy is read.
CREATE TABLE shard_placements (
  shard       smallint PRIMARY KEY CHECK (shard BETWEEN 0 AND 7),
  database    text NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every database of the shard map gets its own block of identity values (block k: ids from
-- k * 2^40), so ids stay unique across databases and a shard's rows keep their ids when they move
-- to another database. The global database is block 0 (the ids it always had). Allocated once per
-- database name, in the global database; core/stores/shard-placements-store.ts raises each
-- database's identity sequences into its block after every migration run.
CREATE TABLE shard_databases (
  name      text PRIMARY KEY,
  id_block  integer NOT NULL UNIQUE CHECK (id_block BETWEEN 0 AND 8191)
);
