-- The W3C trace context of the span that handled each event's cause (NULL for events stored before, or
-- without a trace): the relay sends it on, so one trace runs across the services.
ALTER TABLE events ADD COLUMN traceparent text;
