-- Pipeline secrets, per repository and optionally per environment ('' = every job and environment).
-- Values are sealed with AES-256-GCM (core/secret-box.ts, purpose 'pipeline-secret'); never readable back.
CREATE TABLE secrets (
  tenant_id    bigint NOT NULL,
  repo_id      bigint NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
  environment  text NOT NULL DEFAULT '',
  name         text NOT NULL,
  value_enc    text NOT NULL,
  updated_by   text NOT NULL,
  updated_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, repo_id, environment, name)
);

-- Deploys of a commit to an environment; the id is the deploy workflow's id.
CREATE TABLE deploys (
  tenant_id      bigint NOT NULL,
  id             text NOT NULL,
  repo_id        bigint NOT NULL REFERENCES repos(id),
  environment    text NOT NULL,
  ref            text NOT NULL,
  commit_sha     text NOT NULL,
  status         text NOT NULL CHECK (status IN ('queued', 'waiting_approval', 'running', 'success', 'failure', 'rolled_back', 'rejected', 'cancelled')),
  message        text,
  requested_by   text NOT NULL,
  decided_by     text,
  decided_at     timestamptz,
  rollback_to    text,
  created_at     timestamptz NOT NULL DEFAULT now(),
  started_at     timestamptz,
  finished_at    timestamptz,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (id)
);
CREATE INDEX deploys_by_environment ON deploys (repo_id, environment, created_at DESC);

-- Deploy steps share the steps table (and so the log and live-log machinery) with pipeline runs:
-- their run_id is a deploy id, so the foreign key to runs goes.
ALTER TABLE steps DROP CONSTRAINT steps_run_id_fkey;
