-- phase: expand
-- Issue 12 item 3, ADR 0026: moving a logical shard to another database while the platform serves
-- (workflows/shard-move.ts). Both tables live in every shard database and are only ever non-empty
-- in the SOURCE of a running move:
-- - `shard_fences`: one row per shard being moved out of this database. `tracking` while the copy
--   and catch-up run (every change of the shard's rows is logged in `shard_move_changes`), `fenced`
--   from the fence until the old copy is deleted (every write of the shard's rows fails with
--   SQLSTATE DGF01, whatever shard map the writing process holds).
-- - `shard_move_changes`: the primary keys of the shard's rows written while tracking; the move
--   replays them (re-reads the row: present -> upsert into the target, absent -> delete there).
CREATE TABLE shard_fences (
  shard    smallint PRIMARY KEY CHECK (shard BETWEEN 0 AND 7),
  move_id  text NOT NULL,
  state    text NOT NULL CHECK (state IN ('tracking', 'fenced')),
  since    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE shard_move_changes (
  id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  shard  smallint NOT NULL,
  tbl    text NOT NULL,
  key    jsonb NOT NULL
);
CREATE INDEX shard_move_changes_by_shard ON shard_move_changes (shard, id);

-- The guard every tenant-owned table gets (the move installs it, `shard_move_guard_<table>`, with
-- the table's primary key columns as arguments). A writer locks the shard's fence row FOR KEY SHARE
-- until it commits, so the fence (SELECT … FOR UPDATE, then UPDATE) waits for writers already past
-- the guard and every later writer sees `fenced`: the final catch-up misses nothing. Shards
-- without a row (every shard, outside a move) cost one index probe per written row.
CREATE FUNCTION shard_move_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  tenant bigint;
  s int;
  st text;
  k text;
  r jsonb;
  old_key jsonb;
  new_key jsonb;
BEGIN
  IF TG_OP = 'DELETE' THEN tenant := OLD.tenant_id; ELSE tenant := NEW.tenant_id; END IF;
  IF tenant IS NULL THEN RETURN NULL; END IF;
  s := get_byte(sha256(decode(tenant::text, 'escape')), 3) % 8;
  SELECT state INTO st FROM shard_fences WHERE shard = s FOR KEY SHARE;
  IF NOT FOUND THEN RETURN NULL; END IF;
  IF st = 'fenced' THEN
    RAISE EXCEPTION 'shard % is moving to another database: its writes are fenced for a few seconds, retry shortly', s
      USING ERRCODE = 'DGF01', HINT = 'refresh the shard placements and retry';
  END IF;
  IF TG_OP <> 'INSERT' THEN
    r := to_jsonb(OLD);
    old_key := '{}';
    FOREACH k IN ARRAY TG_ARGV LOOP old_key := old_key || jsonb_build_object(k, r -> k); END LOOP;
    INSERT INTO shard_move_changes (shard, tbl, key) VALUES (s, TG_TABLE_NAME, old_key);
  END IF;
  IF TG_OP <> 'DELETE' THEN
    r := to_jsonb(NEW);
    new_key := '{}';
    FOREACH k IN ARRAY TG_ARGV LOOP new_key := new_key || jsonb_build_object(k, r -> k); END LOOP;
    IF old_key IS DISTINCT FROM new_key THEN
      INSERT INTO shard_move_changes (shard, tbl, key) VALUES (s, TG_TABLE_NAME, new_key);
    END IF;
  END IF;
  RETURN NULL;
END $$;
