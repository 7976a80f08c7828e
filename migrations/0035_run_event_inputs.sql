-- phase: expand
-- Issue 17 item 6: what started a run (`push`, `manual`, `schedule`; null for runs from before) and
-- the values of a hand-started run's inputs (on.manual.inputs), both shown in run answers.
ALTER TABLE runs ADD COLUMN event text;
ALTER TABLE runs ADD COLUMN inputs jsonb;
