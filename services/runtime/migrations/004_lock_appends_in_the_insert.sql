-- Appends take turns until commit, so positions become visible in commit order and the relay, reading past
-- its cursor, can never skip a row that commits late. The insert itself now takes the turn, before its rows
-- are given positions: a round trip less per batch than a lock statement of its own, and no append can
-- forget it. The key is the one a rebuild holds appends off with (eventstore.LOCK_APPENDS).
CREATE FUNCTION lock_appends() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext(TG_TABLE_SCHEMA || '.events'));
    RETURN NULL;
END $$;
CREATE TRIGGER events_take_turns BEFORE INSERT ON events FOR EACH STATEMENT EXECUTE FUNCTION lock_appends();
