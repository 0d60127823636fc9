-- Each message is bounded (1,000,000 units a receipt or order line, 100,000,000 a count), the units a SKU holds
-- over all of them are not: past 2**31 - 1 a 32-bit column refused every later receipt and order of the SKU,
-- which left those orders without an outcome. 64 bits for the SKU's totals and what is shown of them.
ALTER TABLE skus ALTER COLUMN on_hand TYPE bigint, ALTER COLUMN reserved TYPE bigint,
    ALTER COLUMN backordered TYPE bigint;
ALTER TABLE availability ALTER COLUMN on_hand TYPE bigint, ALTER COLUMN reserved TYPE bigint,
    ALTER COLUMN available TYPE bigint, ALTER COLUMN backordered TYPE bigint;
