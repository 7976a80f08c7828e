-- phase: expand
-- Issue 17 item 3: dependency caches (ADR 0030). One row per saved cache: a tar.gz in the object
-- store (`object_key`) holding a job's `cache.paths`, saved under `key` for the ref the run built
-- (GitHub's scoping: a run restores from its own ref, then from the repository's default branch).
-- A key is saved once per ref (first writer wins). `last_used_at` drives least-recently-used eviction
-- when a repository's caches pass DOTGIT_CACHE_REPO_MAX_MB.
CREATE TABLE pipeline_caches (
  tenant_id     bigint NOT NULL,
  id            bigint GENERATED ALWAYS AS IDENTITY,
  repo_id       bigint NOT NULL REFERENCES repos(id),
  ref           text NOT NULL,
  key           text NOT NULL,
  object_key    text NOT NULL,
  size          bigint NOT NULL,
  run_id        text,
  job           text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_used_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (repo_id, ref, key)
);
-- Prefix lookups (restore-keys) newest first, and the LRU order.
CREATE INDEX pipeline_caches_lookup ON pipeline_caches (repo_id, ref, key text_pattern_ops, created_at DESC);
CREATE INDEX pipeline_caches_lru ON pipeline_caches (repo_id, last_used_at);
