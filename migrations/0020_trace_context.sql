-- Issue 14 (ADR 0018): the push's trace context (W3C traceparent) travels with its pipeline start,
-- so the workflow the relay starts continues the push's trace. Null when tracing is off.
ALTER TABLE push_outbox ADD COLUMN traceparent text;
