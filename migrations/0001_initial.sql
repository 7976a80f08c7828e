-- First schema. Tenant-owned tables carry tenant_id in their primary key (DESIGN §4), so they can be
-- sharded by hash(tenant_id) later without a rewrite.

CREATE TABLE tenants (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name        text NOT NULL UNIQUE,
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- Users belong to one tenant; platform admins belong to the reserved tenant created on first start.
CREATE TABLE users (
  tenant_id      bigint NOT NULL REFERENCES tenants(id),
  id             bigint GENERATED ALWAYS AS IDENTITY,
  username       text NOT NULL UNIQUE,
  role           text NOT NULL CHECK (role IN ('admin', 'member', 'reader')),
  platform_admin boolean NOT NULL DEFAULT false,
  created_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (id)
);

-- API tokens: only the SHA-256 of the secret is stored; the token is shown once.
CREATE TABLE tokens (
  tenant_id   bigint NOT NULL,
  id          bigint GENERATED ALWAYS AS IDENTITY,
  user_id     bigint NOT NULL REFERENCES users(id),
  token_hash  bytea NOT NULL UNIQUE,
  scopes      text[] NOT NULL,
  expires_at  timestamptz,
  revoked_at  timestamptz,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (id)
);

CREATE TABLE repos (
  tenant_id   bigint NOT NULL REFERENCES tenants(id),
  id          bigint GENERATED ALWAYS AS IDENTITY,
  name        text NOT NULL,
  visibility  text NOT NULL CHECK (visibility IN ('public', 'private')),
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, id),
  UNIQUE (id),
  UNIQUE (tenant_id, name)
);

-- Explicit grants beyond the tenant role: a user's access to one repository.
CREATE TABLE permissions (
  tenant_id   bigint NOT NULL,
  repo_id     bigint NOT NULL REFERENCES repos(id),
  user_id     bigint NOT NULL REFERENCES users(id),
  access      text NOT NULL CHECK (access IN ('read', 'write', 'admin')),
  PRIMARY KEY (tenant_id, repo_id, user_id)
);

-- Transactional outbox: one row per pushed ref that starts a pipeline; the relay starts the
-- workflow and stamps started_at. Rows wait here while Temporal is down.
CREATE TABLE push_outbox (
  tenant_id   bigint NOT NULL,
  id          bigint GENERATED ALWAYS AS IDENTITY,
  run_id      text NOT NULL UNIQUE,
  payload     jsonb NOT NULL,
  attempts    int NOT NULL DEFAULT 0,
  last_error  text,
  created_at  timestamptz NOT NULL DEFAULT now(),
  started_at  timestamptz,
  PRIMARY KEY (tenant_id, id)
);
CREATE INDEX push_outbox_pending ON push_outbox (created_at) WHERE started_at IS NULL;

CREATE TABLE runs (
  tenant_id    bigint NOT NULL,
  id           text NOT NULL,
  repo_id      bigint NOT NULL REFERENCES repos(id),
  ref          text NOT NULL,
  commit_sha   text NOT NULL,
  status       text NOT NULL CHECK (status IN ('queued', 'running', 'success', 'failure', 'cancelled')),
  message      text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  started_at   timestamptz,
  finished_at  timestamptz,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (id)
);
CREATE INDEX runs_by_repo ON runs (repo_id, created_at DESC);

CREATE TABLE steps (
  tenant_id    bigint NOT NULL,
  run_id       text NOT NULL REFERENCES runs(id),
  job          text NOT NULL,
  name         text NOT NULL,
  position     int NOT NULL,
  status       text NOT NULL CHECK (status IN ('queued', 'running', 'success', 'failure', 'cancelled', 'skipped')),
  exit_code    int,
  log_key      text,
  started_at   timestamptz,
  finished_at  timestamptz,
  PRIMARY KEY (tenant_id, run_id, job, name)
);

CREATE TABLE artifacts (
  tenant_id   bigint NOT NULL,
  run_id      text NOT NULL REFERENCES runs(id),
  job         text NOT NULL,
  path        text NOT NULL,
  object_key  text NOT NULL,
  size        bigint NOT NULL,
  sha256      text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, run_id, path)
);

-- Append-only: the application role never updates or deletes here.
CREATE TABLE audit_log (
  tenant_id   bigint,
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  actor       text NOT NULL,
  action      text NOT NULL,
  target      text NOT NULL,
  detail      jsonb NOT NULL DEFAULT '{}',
  request_id  text,
  at          timestamptz NOT NULL DEFAULT now()
);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
