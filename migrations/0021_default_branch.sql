-- Issue 15 item 5: a repository's default branch (its HEAD on the storage node), kept here so the
-- api answers it without asking the node. The git-server writes it when HEAD changes: the first
-- branch pushed to an empty repository, and PATCH /api/v1/repos/{owner}/{repo} {defaultBranch}.
-- Repositories from before this column were all created with HEAD -> main.
ALTER TABLE repos ADD COLUMN default_branch text NOT NULL DEFAULT 'main';
