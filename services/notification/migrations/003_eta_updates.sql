-- ETA updates are coalesced: one pending update per order, sent when its window has passed and
-- written at send time from the latest ETAs (and any goodwill discount not yet mailed).
ALTER TABLE mail_outbox ADD COLUMN send_after timestamptz NOT NULL DEFAULT now();
CREATE UNIQUE INDEX mail_outbox_one_pending_eta_update ON mail_outbox (order_id)
    WHERE kind = 'eta_changed' AND sent_at IS NULL AND failed_reason IS NULL;

CREATE TABLE backorder_etas (
    order_id text NOT NULL,
    sku      text NOT NULL,
    quantity integer NOT NULL,
    eta      date,
    PRIMARY KEY (order_id, sku)
);

CREATE TABLE discounts (
    order_id text PRIMARY KEY,
    code     text NOT NULL,
    percent  integer NOT NULL,
    mailed   boolean NOT NULL DEFAULT false
);

-- A dispatcher leases what it is sending, so that it can record each mail in its own short
-- transaction the moment the mail server accepts it.
ALTER TABLE mail_outbox ADD COLUMN claimed_until timestamptz;
