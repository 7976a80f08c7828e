-- phase: expand
-- Issue 17 item 8 (ADR 0037): why a job waits when only the workflow knows it. A job of a job-level
-- concurrency group has its queued steps say `queued behind N holders in concurrency group G`
-- until it is granted (cleared then); the other pending reasons are derived when a run is read.
ALTER TABLE steps ADD COLUMN waiting text;
