-- phase: expand
-- Issue 17 item 6 (ADR 0031): the cron entries of each repository's default-branch pipeline file,
-- as the latest push to that branch left them, written in the push's transaction; and an outbox the
-- git-server's relay drains into Temporal Schedules (`dotgit-sched-<repoId>-<n>`). A relay pass
-- reconciles a repository's schedules with its row here (whatever the order rows are drained in).
CREATE TABLE repo_schedules (
  tenant_id   bigint NOT NULL,
  repo_id     bigint NOT NULL,
  owner       text NOT NULL,
  repo_name   text NOT NULL,
  ref         text NOT NULL,
  commit_sha  text NOT NULL,
  crons       jsonb NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, repo_id)
);

CREATE TABLE schedule_outbox (
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
CREATE INDEX schedule_outbox_pending ON schedule_outbox (next_attempt_at) WHERE started_at IS NULL;
