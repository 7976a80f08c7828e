-- Issue 12 item 5: a tamper-evident audit log (docs/decisions, "audit chain"). Every row written
-- from now on is a link of its logical shard's hash chain: `seq` counts 1, 2, 3 … per shard,
-- `prev_hash` is the hash of the shard's previous row (NULL for seq 1), and `hash` is the SHA-256
-- of the row's canonical JSON, which covers `prev_hash` (core/stores/audit-store.ts). The
-- application computes hashes and appends under a per-shard advisory lock; verification walks the
-- chains (GET /api/v1/audit/verify, `dotgit audit verify`).
--
-- The shard is the tenant's (core/shards.ts: byte 3 of SHA-256 of the tenant id's decimal digits,
-- i.e. the first 4 bytes as a big-endian uint32, mod 8; rows without a tenant go to shard 0),
-- computed here so it can never disagree with tenant_id. Rows from before this migration get their
-- shard too (for listing) but stay unchained (seq NULL): the chains start after them, and verify
-- counts them as `unchained`.
ALTER TABLE audit_log
  ADD COLUMN shard smallint NOT NULL GENERATED ALWAYS AS (
    (CASE WHEN tenant_id IS NULL THEN 0 ELSE get_byte(sha256(decode(tenant_id::text, 'escape')), 3) % 8 END)::smallint
  ) STORED,
  ADD COLUMN seq bigint,
  ADD COLUMN prev_hash text,
  ADD COLUMN hash text;

-- New rows must be links (legacy rows are exempt: NOT VALID checks only rows written from now on),
-- so an INSERT that bypasses the store fails instead of leaving a hole in the evidence.
ALTER TABLE audit_log ADD CONSTRAINT audit_log_chained
  CHECK (seq IS NOT NULL AND seq >= 1 AND hash IS NOT NULL AND (seq = 1) = (prev_hash IS NULL)) NOT VALID;

-- One row per position: even a bug in the serialisation could not fork a chain, only fail.
CREATE UNIQUE INDEX audit_log_chain ON audit_log (shard, seq);
-- A tenant's events by id (GET /api/v1/audit?tenant=&after=).
CREATE INDEX audit_log_tenant_id ON audit_log (tenant_id, id);
