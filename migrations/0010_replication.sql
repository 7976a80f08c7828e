-- Replication across zones (issue 6, item 6). `repos.refs_fingerprint` is what the last push left
-- (sha256 of `for-each-ref`, the git-server's refsFingerprint): a replica whose refs hash the same
-- is up to date, and only such a replica serves reads when the primary copy is unavailable.
ALTER TABLE repos ADD COLUMN refs_fingerprint text, ADD COLUMN pushed_at timestamptz;

-- One row per push to replicate; the git-server's relay signals-with-start the repository's
-- `replication` workflow from it (like push_outbox / webhook_outbox: no push is ever missed).
CREATE TABLE replication_outbox (
  tenant_id        bigint NOT NULL,
  id               bigint GENERATED ALWAYS AS IDENTITY,
  repo_id          bigint NOT NULL,
  payload          jsonb NOT NULL,
  attempts         int NOT NULL DEFAULT 0,
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  started_at       timestamptz,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX replication_outbox_pending ON replication_outbox (next_attempt_at) WHERE started_at IS NULL;

-- The state of each repository in each replica zone, as the last sync or reconciliation left it.
CREATE TABLE repo_replicas (
  tenant_id         bigint NOT NULL,
  repo_id           bigint NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
  zone              text NOT NULL,
  refs_fingerprint  text,
  synced_at         timestamptz,
  lag_seconds       double precision,
  last_error        text,
  updated_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, repo_id, zone)
);
