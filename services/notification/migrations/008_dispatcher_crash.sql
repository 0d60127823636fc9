-- Which dispatcher session leased a delivery (its backend pid): the lease of a dispatcher that died is taken
-- over at once instead of when it runs out. And when a delivery was handed to its channel: one whose
-- dispatcher died before recording it may have been sent, so it is never sent again.
ALTER TABLE notification_outbox ADD COLUMN claimed_by integer;
ALTER TABLE notification_outbox ADD COLUMN sending_since timestamptz;
