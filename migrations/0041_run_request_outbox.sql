-- phase: expand
-- Issue 15 item 3 (ADR 0024): runs started through the api (POST …/runs) get the api's own
-- transactional outbox, written in the transaction of the run row and drained by a relay in the api
-- process (core/pipeline-starts.ts, the same code the git-server's relay runs over push_outbox), so
-- the api no longer writes the git-server's push_outbox. In every shard database, like the runs.
CREATE TABLE run_request_outbox (
  tenant_id        bigint NOT NULL,
  id               bigint GENERATED ALWAYS AS IDENTITY,
  run_id           text NOT NULL UNIQUE,
  payload          jsonb NOT NULL,
  traceparent      text,
  attempts         int NOT NULL DEFAULT 0,
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  started_at       timestamptz,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX run_request_outbox_pending ON run_request_outbox (next_attempt_at) WHERE started_at IS NULL;
