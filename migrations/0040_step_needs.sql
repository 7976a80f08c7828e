-- phase: expand
-- Issue 17 item 8 (ADR 0037): a job's needs (by their names in the file) on its step rows, so a run
-- read while it waits can say `waiting for needs: build` without reading the pipeline file.
ALTER TABLE steps ADD COLUMN needs text[];
