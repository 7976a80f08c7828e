-- The push journal (issue 10, defect 11; docs/decisions/0011-push-durability.md). git's
-- reference-transaction hook writes one row per branch/tag update in its `prepared` state, before
-- the refs become visible; the post-receive transaction (or, after a crash, the git-server's
-- reconciliation) creates the push's runs and marks the rows `done` in the same transaction, so a
-- crash at any instant loses no pipeline and starts none twice. Rows whose refs never moved end
-- `aborted`. `instance` is the git-server that took the push: at start-up it reconciles its own
-- rows at once (its previous process is gone); other instances' rows only after a grace period.
CREATE TABLE push_journal (
  tenant_id     bigint NOT NULL,
  id            bigint GENERATED ALWAYS AS IDENTITY,
  repo_id       bigint NOT NULL REFERENCES repos(id) ON DELETE CASCADE,
  push_id       text NOT NULL,
  ref           text NOT NULL,
  old_sha       text NOT NULL,
  new_sha       text NOT NULL,
  actor         text NOT NULL,
  push_options  jsonb NOT NULL DEFAULT '[]',
  instance      text NOT NULL,
  status        text NOT NULL DEFAULT 'prepared' CHECK (status IN ('prepared', 'committed', 'done', 'aborted')),
  run_ids       text[] NOT NULL DEFAULT '{}',
  created_at    timestamptz NOT NULL DEFAULT now(),
  finished_at   timestamptz,
  PRIMARY KEY (tenant_id, id),
  UNIQUE (tenant_id, push_id, ref)
);
CREATE INDEX push_journal_open ON push_journal (created_at) WHERE status IN ('prepared', 'committed');
CREATE INDEX push_journal_repo_ref ON push_journal (repo_id, ref, id);
