-- Issue 10: a step re-run after a lost worker is visible. `attempt` is the step's attempt number
-- (DOTGIT_STEP_ATTEMPT: `retry:` re-runs and Temporal's re-runs after a lost worker, counted
-- together); `host` is the sandbox host that ran it. Both NULL until the step starts.
ALTER TABLE steps ADD COLUMN attempt int, ADD COLUMN host text;
