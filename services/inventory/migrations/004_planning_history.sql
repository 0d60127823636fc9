-- Demand refused for want of stock is recorded but bounded by nothing else: a day of the largest orders
-- overflows a 32-bit integer, and the plan's sums (open purchase orders, position, reorder point, the
-- quantity suggested) can too. 64 bits for each.
ALTER TABLE demand_daily ALTER COLUMN quantity TYPE bigint;
ALTER TABLE planning ALTER COLUMN available TYPE bigint, ALTER COLUMN on_order TYPE bigint,
    ALTER COLUMN backordered TYPE bigint, ALTER COLUMN safety_stock TYPE bigint,
    ALTER COLUMN reorder_point TYPE bigint, ALTER COLUMN suggested TYPE bigint;

-- A purchase order id may be used again once the first was received: each use is a purchase order of its
-- own in the history (one at a time is open).
ALTER TABLE supplier_orders DROP CONSTRAINT supplier_orders_pkey, ADD PRIMARY KEY (sku, po_id, ordered_on);
