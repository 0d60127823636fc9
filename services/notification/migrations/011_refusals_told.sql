-- The refused lines each customer has been told about. Every status event carries all of its order's refusals
-- so far; each is told once, in the first mail that can carry it, and this is how the next batch knows which
-- were. Kept for good, not pruned with the inbox: a status event weeks later (the last shipment) carries the
-- refusals again. One row per refused line.
CREATE TABLE refusals_told (
    order_id        text NOT NULL,
    sku             text NOT NULL,
    notification_id uuid NOT NULL,  -- the mail that told it
    PRIMARY KEY (order_id, sku)
);
