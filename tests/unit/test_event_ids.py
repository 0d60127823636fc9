"""The event store's ids: time-ordered version 7 UUIDs, made in bulk."""

import time
from uuid import UUID

from services.runtime.eventstore import new_event_ids


def test_event_ids_are_distinct_version_7_uuids_of_the_current_millisecond():
    before = time.time_ns() // 1_000_000
    ids = new_event_ids(1000)
    after = time.time_ns() // 1_000_000
    parsed = [UUID(event_id) for event_id in ids]
    assert all(u.version == 7 and u.variant == "specified in RFC 4122" for u in parsed)
    assert all(before <= u.int >> 80 <= after for u in parsed)
    assert len(set(parsed)) == 1000
    assert new_event_ids(0) == []


def test_later_batches_sort_after_earlier_ones():
    first = new_event_ids(10)
    time.sleep(0.002)
    assert max(first) < min(new_event_ids(10))
