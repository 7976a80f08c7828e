-- Repository webhooks (GitHub-shaped events). The secret signs every delivery (X-Hub-Signature-256);
-- it is sealed with AES-256-GCM (core/secret-box.ts, purpose 'webhook-secret') and never returned.
CREATE TABLE webhooks (
  tenant_id   bigint NOT NULL,
  id          bigint GENERATED ALWAYS AS IDENTITY,
  repo_id     bigint NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
  url         text NOT NULL,
  secret_enc  text NOT NULL,
  events      text[] NOT NULL,
  created_by  text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (id)
);
CREATE INDEX webhooks_by_repo ON webhooks (repo_id);

-- One row per delivery attempt: a delivery id (X-GitHub-Delivery) stays the same across Temporal's
-- retries of one event to one hook, so receivers can de-duplicate; `attempt` counts them.
CREATE TABLE webhook_deliveries (
  tenant_id        bigint NOT NULL,
  id               bigint GENERATED ALWAYS AS IDENTITY,
  webhook_id       bigint NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
  delivery_id      uuid NOT NULL,
  event            text NOT NULL,
  action           text,
  attempt          int NOT NULL,
  outcome          text NOT NULL CHECK (outcome IN ('success', 'failure', 'refused')),
  response_status  int,
  error            text,
  duration_ms      int NOT NULL,
  started_at       timestamptz NOT NULL,
  finished_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (delivery_id, attempt)
);
CREATE INDEX webhook_deliveries_by_hook ON webhook_deliveries (webhook_id, id DESC);

-- Events of a push for the webhook relay (git-server), written in the push's transaction when the
-- repository has a hook for `push`; the relay starts one webhookDispatch workflow per row, by
-- deterministic id, the way push_outbox starts pipelines.
CREATE TABLE webhook_outbox (
  tenant_id        bigint NOT NULL,
  id               bigint GENERATED ALWAYS AS IDENTITY,
  workflow_id      text NOT NULL UNIQUE,
  payload          jsonb NOT NULL,
  attempts         int NOT NULL DEFAULT 0,
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  started_at       timestamptz,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX webhook_outbox_pending ON webhook_outbox (next_attempt_at) WHERE started_at IS NULL;
