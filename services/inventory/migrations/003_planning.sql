-- Planning: the history it learns from, recorded by the handlers in the batch's transaction, and what the
-- periodic planning job found, for GET /planning and `make plan`.

-- The lead time ETAs use once deliveries taught one (LeadTimeLearned), and the supplier's usual lateness.
ALTER TABLE skus ADD COLUMN learned_lead_time_days integer, ADD COLUMN learned_delay_days integer NOT NULL DEFAULT 0;

-- Units ordered per SKU and day, backordered ones included: sales alone under-count demand while a SKU is out.
CREATE TABLE demand_daily (
    sku      text NOT NULL,
    day      date NOT NULL,
    quantity integer NOT NULL CHECK (quantity >= 0),
    PRIMARY KEY (sku, day)
);

-- Each purchase order from ExpectReplenishment (the date first promised) to its receipt: the lead times.
CREATE TABLE supplier_orders (
    sku         text NOT NULL,
    po_id       text NOT NULL,
    ordered_on  date NOT NULL,
    expected_on date NOT NULL,
    received_on date,  -- NULL while open
    PRIMARY KEY (sku, po_id)
);
CREATE INDEX supplier_orders_open ON supplier_orders (sku) WHERE received_on IS NULL;

-- Where each SKU stands, as the last planning run saw it, and what it already told (told once).
CREATE TABLE planning (
    sku              text PRIMARY KEY,
    name             text NOT NULL,
    available        integer NOT NULL,
    on_order         integer NOT NULL,
    backordered      integer NOT NULL,
    daily_demand     real NOT NULL,
    days_of_cover    real,  -- NULL: no demand forecast, stock lasts for ever
    lead_time_days   real NOT NULL,
    safety_stock     integer NOT NULL,
    reorder_point    integer NOT NULL,
    status           text NOT NULL,  -- ok | reorder | at_risk | overstock
    method           text NOT NULL,  -- the forecast model
    forecast         real[] NOT NULL,  -- expected demand of the next days, from `planned_on`
    planned_on       date NOT NULL,
    suggested        integer NOT NULL DEFAULT 0,
    orders_seen      text[] NOT NULL DEFAULT '{}',
    overstocked      boolean NOT NULL DEFAULT false,
    delays_told      text[] NOT NULL DEFAULT '{}'
);
