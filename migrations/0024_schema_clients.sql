-- phase: expand
-- Every running process that connects to Postgres registers the schema version its code was
-- shipped with (the number of the newest migration in its checkout), so a `contract` migration
-- (core/migrate.ts, docs/migrations.md) can refuse to run while an older process is still serving.
-- A row is upserted at start-up, its seen_at refreshed periodically, and deleted on clean
-- shutdown; a row not refreshed within the stale window (a crashed process) no longer blocks.
CREATE TABLE schema_clients (
  instance text PRIMARY KEY,
  kind text NOT NULL,
  host text NOT NULL,
  pid integer NOT NULL,
  needs_version integer NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  seen_at timestamptz NOT NULL DEFAULT now()
);
