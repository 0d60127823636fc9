-- When an ETA changes again while its order's update is being sent, the update is marked touched; once
-- the one in flight is recorded, a follow-up is queued, so the latest ETA is never left untold.
ALTER TABLE notification_outbox ADD COLUMN touched_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE discounts ADD COLUMN cause text NOT NULL DEFAULT 'eta_slipped';
