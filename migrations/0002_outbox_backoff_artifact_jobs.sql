-- Outbox rows that failed to start wait before the next try, so one bad row never blocks the rest.
ALTER TABLE push_outbox ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now();
DROP INDEX push_outbox_pending;
CREATE INDEX push_outbox_pending ON push_outbox (next_attempt_at) WHERE started_at IS NULL;

-- Artifacts belong to a job: two jobs of one run may upload the same path.
ALTER TABLE artifacts DROP CONSTRAINT artifacts_pkey;
ALTER TABLE artifacts ADD PRIMARY KEY (tenant_id, run_id, job, path);
