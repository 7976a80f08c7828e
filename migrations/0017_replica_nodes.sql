-- Issue 11 item 4, ADR 0014: replicas on other storage nodes. With DOTGIT_REPLICA_NODES > 0 the api
-- records, when it places a repository, up to that many other nodes that hold a copy of it. Their
-- state is in `repo_replicas` under the zone `node:<id>`; a node's copy serves reads while the
-- holder is down only if its fingerprint equals `repos.refs_fingerprint`.
ALTER TABLE repos ADD COLUMN replica_nodes text[] NOT NULL DEFAULT '{}';
CREATE INDEX repos_with_replica_nodes ON repos (id) WHERE replica_nodes <> '{}';
