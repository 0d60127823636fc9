-- What the notification service knows of products, from inventory events: names for mails, and which
-- alternatives are in stock now, to offer them with a backorder.
CREATE TABLE products (
    sku          text PRIMARY KEY,
    name         text NOT NULL,
    alternatives text[] NOT NULL
);

CREATE TABLE sku_availability (
    sku       text PRIMARY KEY,
    status    text NOT NULL,
    available integer NOT NULL
);
