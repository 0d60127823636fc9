-- Sent notifications are pruned after the inbox's retention (the row only guards against its cause coming
-- again); this finds them without reading the outbox.
CREATE INDEX notification_outbox_sent ON notification_outbox (sent_at) WHERE sent_at IS NOT NULL;
