-- phase: expand
-- Issue 17 item 5: re-runs (ADR 0030). A run is re-run as a new attempt of the same run id
-- (`runs.attempt`, 1 for the first). `steps` keeps each step's latest state and says which attempt
-- produced it (`run_attempt`: a job not re-run keeps the attempt that ran it); the steps as an
-- attempt left them are copied into `run_attempt_steps` when the next attempt begins. Job outputs
-- are kept (`job_outputs`) so a later attempt can hand a reused job's outputs to the jobs it re-runs.
ALTER TABLE runs ADD COLUMN attempt int NOT NULL DEFAULT 1;
ALTER TABLE steps ADD COLUMN run_attempt int NOT NULL DEFAULT 1;

CREATE TABLE run_attempts (
  tenant_id    bigint NOT NULL,
  run_id       text NOT NULL REFERENCES runs(id),
  attempt      int NOT NULL,
  status       text NOT NULL,
  message      text,
  failed_only  boolean NOT NULL DEFAULT false,
  requested_by text,
  created_at   timestamptz NOT NULL,
  started_at   timestamptz,
  finished_at  timestamptz,
  PRIMARY KEY (tenant_id, run_id, attempt)
);

CREATE TABLE run_attempt_steps (
  tenant_id    bigint NOT NULL,
  run_id       text NOT NULL REFERENCES runs(id),
  attempt      int NOT NULL,
  job          text NOT NULL,
  name         text NOT NULL,
  position     int NOT NULL,
  status       text NOT NULL,
  exit_code    int,
  log_key      text,
  step_attempt int,
  host         text,
  run_attempt  int NOT NULL,
  started_at   timestamptz,
  finished_at  timestamptz,
  PRIMARY KEY (tenant_id, run_id, attempt, job, name)
);

CREATE TABLE job_outputs (
  tenant_id   bigint NOT NULL,
  run_id      text NOT NULL REFERENCES runs(id),
  job         text NOT NULL,
  outputs     jsonb NOT NULL,
  run_attempt int NOT NULL,
  PRIMARY KEY (tenant_id, run_id, job)
);
