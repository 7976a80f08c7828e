-- phase: expand
-- Issue 12 item 2 (ADR 0025): the tenant-owned tables added after 0026 get the keys 0026 gave the
-- others, so every key stays inside one tenant and so inside one logical shard (Citus
-- co-location, docs/sharding.md). Their primary keys already lead with tenant_id; their foreign
-- keys named the parent's id alone. Each new key is added NOT VALID and validated afterwards
-- (validation takes no write lock). Same ON DELETE behaviour as the keys they replace.

ALTER TABLE pipeline_caches DROP CONSTRAINT pipeline_caches_repo_id_fkey,
  ADD CONSTRAINT pipeline_caches_repo_fkey FOREIGN KEY (tenant_id, repo_id) REFERENCES repos (tenant_id, id) NOT VALID;
ALTER TABLE run_attempts DROP CONSTRAINT run_attempts_run_id_fkey,
  ADD CONSTRAINT run_attempts_run_fkey FOREIGN KEY (tenant_id, run_id) REFERENCES runs (tenant_id, id) NOT VALID;
ALTER TABLE run_attempt_steps DROP CONSTRAINT run_attempt_steps_run_id_fkey,
  ADD CONSTRAINT run_attempt_steps_run_fkey FOREIGN KEY (tenant_id, run_id) REFERENCES runs (tenant_id, id) NOT VALID;
ALTER TABLE job_outputs DROP CONSTRAINT job_outputs_run_id_fkey,
  ADD CONSTRAINT job_outputs_run_fkey FOREIGN KEY (tenant_id, run_id) REFERENCES runs (tenant_id, id) NOT VALID;

ALTER TABLE pipeline_caches VALIDATE CONSTRAINT pipeline_caches_repo_fkey;
ALTER TABLE run_attempts VALIDATE CONSTRAINT run_attempts_run_fkey;
ALTER TABLE run_attempt_steps VALIDATE CONSTRAINT run_attempt_steps_run_fkey;
ALTER TABLE job_outputs VALIDATE CONSTRAINT job_outputs_run_fkey;

-- A cache key's uniqueness with the distribution column in it (Citus refuses unique constraints
-- without it). The id-only UNIQUE (repo_id, ref, key) stays until a contract: the previous
-- release's `ON CONFLICT (repo_id, ref, key)` needs it (docs/sharding.md lists the drop).
ALTER TABLE pipeline_caches ADD CONSTRAINT pipeline_caches_tenant_repo_ref_key_key UNIQUE (tenant_id, repo_id, ref, key);

-- repo_schedules and schedule_outbox (0034) have tenant-leading primary keys and no foreign keys
-- (an outbox row outlives its repository: it carries the removal of the repository's Temporal
-- Schedules). console_sessions and console_signin_codes (0036) stay global, beside the tokens they
-- reference: a session is looked up by its cookie before any tenant is known (ADR 0025).
