-- Issue 11 item 4, ADR 0014: every git-server is a storage node. Nodes register here and heartbeat
-- every 2 s (older than 10 s: down). `repos.node_id` records where a repository lives; NULL only for
-- repositories from before nodes, which the first node that finds them on its disk claims.
CREATE TABLE storage_nodes (
  id text PRIMARY KEY,
  url text NOT NULL,
  heartbeat_at timestamptz NOT NULL,
  started_at timestamptz NOT NULL
);
ALTER TABLE repos ADD COLUMN node_id text NULL REFERENCES storage_nodes (id);
CREATE INDEX repos_node_id ON repos (node_id);
