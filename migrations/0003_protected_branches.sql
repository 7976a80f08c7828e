-- Protected branches (per repository): a branch name or glob, what is allowed on it, and
-- optionally who may push. Enforced by the git-server's pre-receive hook.
CREATE TABLE protected_branches (
  tenant_id         bigint NOT NULL,
  repo_id           bigint NOT NULL REFERENCES repos(id),
  pattern           text NOT NULL,
  allow_force_push  boolean NOT NULL DEFAULT false,
  allow_deletion    boolean NOT NULL DEFAULT false,
  pushers           text[],
  updated_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, repo_id, pattern)
);
