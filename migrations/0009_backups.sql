-- Backups, restores and restore drills, for the API's listing and the drill metric. The object
-- store is the truth (a backup is complete once its manifest is there, and a restore must work
-- without this database); these rows say what ran, when, and how it ended.
CREATE TABLE backups (
  id           text PRIMARY KEY,
  trigger      text NOT NULL CHECK (trigger IN ('schedule', 'api')),
  status       text NOT NULL CHECK (status IN ('running', 'complete', 'failed')),
  started_at   timestamptz NOT NULL DEFAULT now(),
  finished_at  timestamptz,
  repos        int,
  changed      int,
  postgres_base boolean,
  error        text
);
CREATE INDEX backups_started ON backups (started_at DESC);

CREATE TABLE restores (
  id           text PRIMARY KEY,
  kind         text NOT NULL CHECK (kind IN ('restore', 'drill')),
  at           timestamptz NOT NULL,
  status       text NOT NULL CHECK (status IN ('running', 'complete', 'failed')),
  backup_id    text,
  dir          text,
  problems     jsonb,
  started_at   timestamptz NOT NULL DEFAULT now(),
  finished_at  timestamptz
);
