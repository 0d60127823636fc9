-- Notifications go out on one or more channels (email, and a storefront webhook when configured): one
-- row per notification and channel, each sent, retried and recorded on its own.
ALTER TABLE mail_outbox RENAME TO notification_outbox;
ALTER TABLE notification_outbox ADD COLUMN channel text NOT NULL DEFAULT 'email';
ALTER TABLE notification_outbox ADD COLUMN attempts integer NOT NULL DEFAULT 0;
ALTER TABLE notification_outbox DROP CONSTRAINT mail_outbox_pkey;
ALTER TABLE notification_outbox ADD PRIMARY KEY (notification_id, channel);
DROP INDEX mail_outbox_one_pending_eta_update;
CREATE UNIQUE INDEX notification_outbox_one_pending_eta_update ON notification_outbox (order_id, channel)
    WHERE kind = 'eta_changed' AND sent_at IS NULL AND failed_reason IS NULL;
