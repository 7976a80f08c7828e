-- phase: expand
-- Issue 12, ADR 0043: rows without a tenant belong to shard 0 (the audit log's platform-level
-- entries, whose hash chain is shard 0's: migration 0019's generated `shard`). Until now the shard
-- move's guard skipped them (`tenant IS NULL` → no log, no fence), and the move's copy, verify and
-- clean-up selected rows by their tenant's shard, which is NULL for them: moving shard 0 left its
-- platform-level links behind on the source while the tenants' links moved, and a writer of
-- platform entries kept appending on the source. Now the guard logs and fences them as shard 0's
-- (core/stores/shard-move-store.ts selects them the same way), so shard 0's chain moves whole.
-- Only `audit_log` has a nullable tenant_id among the tenant-owned tables.
-- Expand: the function's contract (arguments, trigger) is unchanged; old code installs and fires it alike.
CREATE OR REPLACE FUNCTION shard_move_guard() RETURNS trigger LANGUAGE plpgsql AS $$
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
  IF tenant IS NULL THEN s := 0; ELSE s := get_byte(sha256(decode(tenant::text, 'escape')), 3) % 8; END IF;
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
