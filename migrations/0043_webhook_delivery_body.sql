-- phase: expand
-- Issue 18 (redeliver from the console and the API): the exact body a delivery sent, kept on the
-- first row recorded for its delivery id (not on every retry), so POST …/deliveries/{id}/redeliver
-- sends the same bytes again. Null on later attempts and on deliveries from before this column.
ALTER TABLE webhook_deliveries ADD COLUMN body text;
