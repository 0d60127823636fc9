-- The SKU aggregate as rows: a small root per SKU, with its backorder queue, reservations and purchase
-- orders as rows locked with it, so that a batch reads and writes what it touches, not the whole queue.
CREATE TABLE skus (
    sku               text PRIMARY KEY,
    version           integer NOT NULL,  -- events in the SKU's stream so far
    product           jsonb,
    on_hand           integer NOT NULL CHECK (on_hand >= 0),
    reserved          integer NOT NULL CHECK (reserved >= 0 AND reserved <= on_hand),
    backordered       integer NOT NULL CHECK (backordered >= 0),
    next_seq          bigint NOT NULL,
    front_seq         bigint NOT NULL,
    reservations_made bigint NOT NULL,
    enqueued_units    bigint NOT NULL,
    removed_units     bigint NOT NULL
);

CREATE TABLE backorders (
    sku          text NOT NULL,
    order_id     text NOT NULL,
    seq          bigint NOT NULL,  -- place in the queue, lower first
    ticket       bigint NOT NULL,  -- units enqueued before it: bounds the units ahead without a walk
    quantity     integer NOT NULL CHECK (quantity > 0),
    placed_on    date NOT NULL,
    eta          date NOT NULL,
    reviewed_on  date NOT NULL,
    fallback_eta date NOT NULL,
    PRIMARY KEY (sku, order_id)
);
CREATE UNIQUE INDEX backorders_queue ON backorders (sku, seq);
CREATE INDEX backorders_by_eta ON backorders (eta);  -- the daily review of ETAs that passed

CREATE TABLE reservations (
    sku        text NOT NULL,
    order_id   text NOT NULL,
    since      bigint NOT NULL,
    from_stock integer NOT NULL CHECK (from_stock >= 0),
    filled     integer NOT NULL CHECK (filled >= 0),
    PRIMARY KEY (sku, order_id)
);

CREATE TABLE replenishments (
    sku         text NOT NULL,
    po_id       text NOT NULL,
    quantity    integer NOT NULL CHECK (quantity > 0),
    expected_on date NOT NULL,
    PRIMARY KEY (sku, po_id)
);

-- SKUs kept before as whole snapshots become rows.
INSERT INTO skus
SELECT stream_id, version, nullif(state->'product', 'null'::jsonb), (state->>'on_hand')::int, (state->>'reserved')::int,
       (state->>'backordered')::int, jsonb_array_length(state->'backorders'), 0,
       coalesce((state->>'reservations_made')::bigint, 0), (state->>'backordered')::int, 0
FROM snapshots;
INSERT INTO backorders
SELECT s.stream_id, q.b->>'order_id', q.n - 1,
       coalesce(sum((q.b->>'quantity')::int) OVER (PARTITION BY s.stream_id ORDER BY q.n
                                                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0),
       (q.b->>'quantity')::int, (q.b->>'placed_on')::date, (q.b->>'eta')::date,
       (q.b->>'placed_on')::date, (q.b->>'placed_on')::date
FROM snapshots s, jsonb_array_elements(s.state->'backorders') WITH ORDINALITY AS q(b, n);
INSERT INTO reservations
SELECT s.stream_id, r.key, (r.value->>'since')::bigint, (r.value->>'from_stock')::int, (r.value->>'filled')::int
FROM snapshots s, jsonb_each(s.state->'reservations') AS r;
INSERT INTO replenishments
SELECT s.stream_id, p->>'po_id', (p->>'quantity')::int, (p->>'expected_on')::date
FROM snapshots s, jsonb_array_elements(s.state->'replenishments') AS p;
DELETE FROM snapshots;

-- GET /availability/{sku} tells whether available stock is at or below the product's safety stock.
ALTER TABLE availability ADD COLUMN low_stock boolean NOT NULL DEFAULT false;
