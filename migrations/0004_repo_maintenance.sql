-- Maintenance bookkeeping: pushes since the last repack, so the sweep only touches changed repositories.
ALTER TABLE repos ADD COLUMN pushes_since_maintenance int NOT NULL DEFAULT 0;
ALTER TABLE repos ADD COLUMN last_maintenance_at timestamptz;
CREATE INDEX repos_needing_maintenance ON repos (id) WHERE pushes_since_maintenance > 0;
