-- Read model behind GET /availability/{sku}.
CREATE TABLE availability (
    sku                 text PRIMARY KEY,
    name                text,
    status              text NOT NULL,  -- in_stock | backorderable | unavailable
    on_hand             integer NOT NULL,
    reserved            integer NOT NULL,
    available           integer NOT NULL,
    backordered         integer NOT NULL,
    backorder_eta       date,           -- for an order placed now, when status = backorderable
    updated_at          timestamptz NOT NULL DEFAULT now()
);
