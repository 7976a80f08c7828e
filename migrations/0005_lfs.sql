-- Git LFS objects a repository holds. The bytes live in the object store under
-- lfs/<owner>/<repo>/<oid[0:2]>/<oid[2:4]>/<oid>; a row is written only after the upload was
-- verified against its oid and committed there, so a row means "this repository has this object,
-- of this size" (the store has no cheap size lookup, and the batch API needs one).
CREATE TABLE lfs_objects (
  tenant_id   bigint NOT NULL,
  repo_id     bigint NOT NULL REFERENCES repos(id),
  oid         text NOT NULL CHECK (oid ~ '^[0-9a-f]{64}$'),
  size        bigint NOT NULL CHECK (size >= 0),
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, repo_id, oid)
);
