-- What the goodwill review needs: backordered orders that wait long and were offered nothing yet.
ALTER TABLE orders ADD COLUMN waiting_since date;
ALTER TABLE orders ADD COLUMN discount_code text;
CREATE INDEX orders_waiting ON orders (waiting_since) WHERE status = 'backordered' AND discount_code IS NULL;
