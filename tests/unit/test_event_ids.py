"""The event store's ids: random version 4 UUIDs, made in bulk."""

from uuid import UUID

from services.runtime.eventstore import new_event_ids


def test_event_ids_are_distinct_version_4_uuids():
    ids = new_event_ids(1000)
    parsed = [UUID(event_id) for event_id in ids]
    assert all(u.version == 4 and u.variant == "specified in RFC 4122" for u in parsed)
    assert len(set(parsed)) == 1000
    assert new_event_ids(0) == []
