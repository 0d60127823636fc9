-- The event store of one service, in the service's own schema. It is also the outbox: the relay
-- publishes rows in `position` order and records in relay_cursor how far it got.
CREATE TABLE events (
    position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id      text NOT NULL,
    version        integer NOT NULL,
    event_id       uuid NOT NULL UNIQUE,
    type           text NOT NULL,
    data           jsonb NOT NULL,
    correlation_id text,
    causation_id   text,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    -- Optimistic concurrency: two writers of the same stream version cannot both commit.
    UNIQUE (stream_id, version)
);

-- The current state of each stream, kept in the same transaction as its events so that a batch
-- loads its aggregates in one round trip instead of replaying their streams. Derivable from events.
CREATE TABLE snapshots (
    stream_id text PRIMARY KEY,
    version   integer NOT NULL,
    state     jsonb NOT NULL
);

-- Messages already handled (by message id, or by the business key of an idempotent command).
CREATE TABLE inbox (
    message_key text PRIMARY KEY,
    handled_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE relay_cursor (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    position  bigint NOT NULL
);
INSERT INTO relay_cursor (position) VALUES (0);

-- Wakes relays of other processes; notifications are folded to one per transaction.
CREATE FUNCTION notify_events() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify(current_schema() || '_events', '');
    RETURN NULL;
END $$;
CREATE TRIGGER events_appended AFTER INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION notify_events();
