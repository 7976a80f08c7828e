-- phase: expand
-- Issue 12 item 2 (ADR 0025): tenant-owned tables' foreign keys lead with tenant_id, as their
-- primary keys already do, so every key stays inside one tenant and so inside one logical shard
-- (Citus co-location: docs/sharding.md). Foreign keys to global tables that do not live on every
-- shard database (storage_nodes, users) go: those tables are in the global database only, and a
-- shard database's copy of them is empty. `tenants` stays referenced: it is a reference table,
-- copied to every shard database (core/stores/tenants-store.ts, insertTenantCopy).
-- Each new key is added NOT VALID and validated afterwards (validation takes no write lock).

-- Global tables (users, tokens) keep their keys, tokens' user key now tenant-leading too.
ALTER TABLE tokens DROP CONSTRAINT tokens_user_id_fkey,
  ADD CONSTRAINT tokens_user_fkey FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) NOT VALID;

-- To global-only tables: dropped.
ALTER TABLE repos DROP CONSTRAINT repos_node_id_fkey, DROP CONSTRAINT repos_moving_to_fkey;
ALTER TABLE permissions DROP CONSTRAINT permissions_user_id_fkey;

-- Within the shard: (tenant_id, x_id) -> (tenant_id, id).
ALTER TABLE permissions DROP CONSTRAINT permissions_repo_id_fkey,
  ADD CONSTRAINT permissions_repo_fkey FOREIGN KEY (tenant_id, repo_id) REFERENCES repos (tenant_id, id) NOT VALID;
ALTER TABLE runs DROP CONSTRAINT runs_repo_id_fkey,
  ADD CONSTRAINT runs_repo_fkey FOREIGN KEY (tenant_id, repo_id) REFERENCES repos (tenant_id, id) NOT VALID;
ALTER TABLE artifacts DROP CONSTRAINT artifacts_run_id_fkey,
  ADD CONSTRAINT artifacts_run_fkey FOREIGN KEY (tenant_id, run_id) REFERENCES runs (tenant_id, id) NOT VALID;
ALTER TABLE protected_branches DROP CONSTRAINT protected_branches_repo_id_fkey,
  ADD CONSTRAINT protected_branches_repo_fkey FOREIGN KEY (tenant_id, repo_id) REFERENCES repos (tenant_id, id) NOT VALID;
ALTER TABLE lfs_objects DROP CONSTRAINT lfs_objects_repo_id_fkey,
  ADD CONSTRAINT lfs_objects_repo_fkey FOREIGN KEY (tenant_id, repo_id) REFERENCES repos (tenant_id, id) NOT VALID;
ALTER TABLE webhooks DROP CONSTRAINT webhooks_repo_id_fkey,
  ADD CONSTRAINT webhooks_repo_fkey FOREIGN KEY (tenant_id, repo_id) REFERENCES repos (tenant_id, id) ON DELETE CASCADE NOT VALID;
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_webhook_id_fkey,
  ADD CONSTRAINT webhook_deliveries_webhook_fkey FOREIGN KEY (tenant_id, webhook_id) REFERENCES webhooks (tenant_id, id) ON DELETE CASCADE NOT VALID;
ALTER TABLE secrets DROP CONSTRAINT secrets_repo_id_fkey,
  ADD CONSTRAINT secrets_repo_fkey FOREIGN KEY (tenant_id, repo_id) REFERENCES repos (tenant_id, id) ON DELETE CASCADE NOT VALID;
ALTER TABLE deploys DROP CONSTRAINT deploys_repo_id_fkey,
  ADD CONSTRAINT deploys_repo_fkey FOREIGN KEY (tenant_id, repo_id) REFERENCES repos (tenant_id, id) NOT VALID;
ALTER TABLE repo_replicas DROP CONSTRAINT repo_replicas_repo_id_fkey,
  ADD CONSTRAINT repo_replicas_repo_fkey FOREIGN KEY (tenant_id, repo_id) REFERENCES repos (tenant_id, id) ON DELETE CASCADE NOT VALID;
ALTER TABLE push_journal DROP CONSTRAINT push_journal_repo_id_fkey,
  ADD CONSTRAINT push_journal_repo_fkey FOREIGN KEY (tenant_id, repo_id) REFERENCES repos (tenant_id, id) ON DELETE CASCADE NOT VALID;

ALTER TABLE tokens VALIDATE CONSTRAINT tokens_user_fkey;
ALTER TABLE permissions VALIDATE CONSTRAINT permissions_repo_fkey;
ALTER TABLE runs VALIDATE CONSTRAINT runs_repo_fkey;
ALTER TABLE artifacts VALIDATE CONSTRAINT artifacts_run_fkey;
ALTER TABLE protected_branches VALIDATE CONSTRAINT protected_branches_repo_fkey;
ALTER TABLE lfs_objects VALIDATE CONSTRAINT lfs_objects_repo_fkey;
ALTER TABLE webhooks VALIDATE CONSTRAINT webhooks_repo_fkey;
ALTER TABLE webhook_deliveries VALIDATE CONSTRAINT webhook_deliveries_webhook_fkey;
ALTER TABLE secrets VALIDATE CONSTRAINT secrets_repo_fkey;
ALTER TABLE deploys VALIDATE CONSTRAINT deploys_repo_fkey;
ALTER TABLE repo_replicas VALIDATE CONSTRAINT repo_replicas_repo_fkey;
ALTER TABLE push_journal VALIDATE CONSTRAINT push_journal_repo_fkey;

-- The logical shard of a tenant in SQL, the same number as core/shards.ts shardOf (byte 3 of the
-- SHA-256 of the id's decimal digits = the first 4 bytes big-endian mod 8, since 2^8 is a multiple
-- of 8): for fan-out reads that must count each shard once, and a shard move's copy.
CREATE FUNCTION dotgit_shard_of(tenant_id bigint) RETURNS smallint LANGUAGE sql IMMUTABLE PARALLEL SAFE
  RETURN (get_byte(sha256(decode(tenant_id::text, 'escape')), 3) % 8)::smallint;
