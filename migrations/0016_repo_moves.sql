-- Issue 11 item 4, ADR 0014: moving a repository between storage nodes. While a move fences the
-- repository's writes, `moving_to` names the node it goes to; the node holding it then refuses
-- pushes (503, Retry-After). The switch sets `node_id` and clears this in one transaction.
ALTER TABLE repos ADD COLUMN moving_to text NULL REFERENCES storage_nodes (id);
