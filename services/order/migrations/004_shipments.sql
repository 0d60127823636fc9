-- GET /orders/{id} shows what has shipped.
ALTER TABLE order_lines ADD COLUMN shipped integer NOT NULL DEFAULT 0;
