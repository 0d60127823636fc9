-- Read model behind GET /orders/{order_id}.
CREATE TABLE orders (
    order_id    text PRIMARY KEY,
    customer_id text NOT NULL,
    status      text NOT NULL,
    currency    text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE order_lines (
    order_id            text NOT NULL REFERENCES orders ON DELETE CASCADE,
    sku                 text NOT NULL,
    quantity            integer NOT NULL,
    unit_price          numeric,
    reserved            integer NOT NULL,
    backordered         integer NOT NULL,
    fulfilled           integer NOT NULL,
    estimated_ship_date date,
    rejection_reason    text,
    rejection_message   text,
    PRIMARY KEY (order_id, sku)
);
