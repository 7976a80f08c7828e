-- Idempotency-Key on every POST of the api (draft-ietf-httpapi-idempotency-key-header, issue 10).
-- One row per (caller, key): the request's fingerprint, and once it is answered, the answer
-- (2xx/4xx only) to replay. status IS NULL while the first request is still being processed;
-- locked_at is when it began, so a row left by a crashed api can be taken over after a while.
-- Housekeeping prunes rows older than 24 hours by created_at.
CREATE TABLE idempotency_keys (
  principal    text NOT NULL,
  key          text NOT NULL,
  fingerprint  text NOT NULL,
  status       int,
  response     text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  locked_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
