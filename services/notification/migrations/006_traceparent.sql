-- The W3C trace context of the span that queued each notification: the dispatcher's span that sends it is
-- its child, so the mail ends the trace of the command that caused it.
ALTER TABLE notification_outbox ADD COLUMN traceparent text;
