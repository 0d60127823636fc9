-- A notification can overtake the OrderPlaced that says whom to send it to; until that contact is known it
-- waits, out of the index the dispatchers claim from. One whose OrderPlaced never comes (the service deployed
-- after the order was placed, the topic's retention passed) would otherwise be read by every claim for good.
-- Learning an order's contact releases its waiting rows; one still waiting after INBOX_RETENTION_HOURS is
-- refused with why (outbox.py).
ALTER TABLE notification_outbox ADD COLUMN waiting_for_contact boolean NOT NULL DEFAULT false;
UPDATE notification_outbox n SET waiting_for_contact = true
WHERE sent_at IS NULL AND failed_reason IS NULL
  AND NOT EXISTS (SELECT FROM order_contacts c WHERE c.order_id = n.order_id);
-- What the dispatchers claim from: neither sent, refused nor waiting for a contact (mail_outbox_pending, which
-- the claim used, also holds every refused row, and they are kept).
CREATE INDEX notification_outbox_to_send ON notification_outbox (created_at)
    WHERE sent_at IS NULL AND failed_reason IS NULL AND NOT waiting_for_contact;
-- The rows a contact releases, and those refused when it never comes.
CREATE INDEX notification_outbox_waiting_for_contact ON notification_outbox (order_id) WHERE waiting_for_contact;
-- Deliveries handed to their channel and not yet recorded, which every dispatcher's batch looks at for one left
-- in doubt: a few at any time, where the whole outbox was read.
CREATE INDEX notification_outbox_sending ON notification_outbox (claimed_until)
    WHERE sending_since IS NOT NULL AND sent_at IS NULL AND failed_reason IS NULL;
