-- Deliveries their channel accepted, waiting to be recorded as sent (sent_at, and their NotificationSent
-- events) with the rest of their batch: accepting one is a single short insert, and the event store's
-- appends, which take turns, come once per batch. Whatever a dispatcher that stopped left here is
-- recorded by the next: never in doubt, never sent again.
CREATE TABLE notifications_to_record (
    notification_id uuid NOT NULL,
    channel         text NOT NULL,
    traceparent     text,                  -- of the span that sent it: the NotificationSent event's
    discount        boolean NOT NULL,      -- it told a goodwill discount, now mailed
    touched_at      timestamptz NOT NULL,  -- of an ETA update when its text was written: a later touch is told again
    PRIMARY KEY (notification_id, channel)
);
