-- Who to tell about an order, from OrderPlaced.
CREATE TABLE order_contacts (
    order_id       text PRIMARY KEY,
    customer_id    text NOT NULL,
    customer_email text NOT NULL
);

-- Notifications decided but maybe not yet sent. The id is derived from the event that caused the
-- notification, so a redelivered event finds its row already here and nothing is sent twice.
CREATE TABLE mail_outbox (
    notification_id uuid PRIMARY KEY,
    order_id        text NOT NULL,
    kind            text NOT NULL,
    subject         text NOT NULL,
    body            text NOT NULL,
    correlation_id  text,
    causation_id    text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX mail_outbox_pending ON mail_outbox (created_at) WHERE sent_at IS NULL;

-- A notification the mail server refused for good (a bad address) is kept with why, not retried.
ALTER TABLE mail_outbox ADD COLUMN failed_reason text;
