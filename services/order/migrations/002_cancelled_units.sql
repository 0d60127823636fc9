ALTER TABLE order_lines ADD COLUMN cancelled integer NOT NULL DEFAULT 0;
