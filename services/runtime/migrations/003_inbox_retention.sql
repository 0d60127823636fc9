-- The inbox is pruned of what only guards against Kafka redelivering a message (a message id), once the
-- topics' retention has passed; a key that is the sender's id (an order, shipment, receipt or purchase
-- order id) is kept: a sender may repeat those at any time.
ALTER TABLE inbox ADD COLUMN kept boolean NOT NULL DEFAULT false;
UPDATE inbox SET kept = true WHERE message_key ~ '^(PlaceOrder|ShipOrder|ReceiveStock|ExpectReplenishment):';
CREATE INDEX inbox_expiring ON inbox (handled_at) WHERE NOT kept;
