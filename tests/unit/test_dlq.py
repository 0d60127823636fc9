"""Dead letters as the operator's command line reads them: where from, why, and the headers to re-drive with."""

import base64
from datetime import UTC, datetime, timedelta

from aiokafka.structs import ConsumerRecord

from services.dlq import REDRIVEN_FROM, DeadLetter, Filter, parse_since


def dead_letter(value: bytes = b"{}", headers=()) -> DeadLetter:
    return DeadLetter(ConsumerRecord(topic="orders.commands.dlq", partition=1, offset=7, timestamp=1_764_000_000_000,
                                     timestamp_type=0, key=b"ord-1", value=value, checksum=None,
                                     serialized_key_size=5, serialized_value_size=len(value), headers=list(headers)))


def test_a_dead_letter_is_redriven_with_the_original_headers_restored_and_its_own_mark():
    letter = dead_letter(headers=[
        ("content-type", b"application/cloudevents+json"), ("x-trace", base64.b64encode(b"\xff\x00")),
        ("x-none", b""), ("dlq.error", b"not JSON"), ("dlq.base64", b"x-trace"),
        ("dlq.original.topic", b"orders.commands"), ("dlq.original.partition", b"2"), ("dlq.original.offset", b"40"),
        (REDRIVEN_FROM, b"orders.commands.dlq/0/1")])  # re-driven before, and dead-lettered again

    assert letter.id == "orders.commands.dlq/1/7"
    assert letter.origin == "orders.commands/2/40"
    assert letter.reason == "not JSON"
    assert letter.original_headers() == [("content-type", b"application/cloudevents+json"), ("x-trace", b"\xff\x00"),
                                         ("x-none", b""), (REDRIVEN_FROM, b"orders.commands.dlq/1/7")]


def test_the_preview_of_a_value_is_one_short_line():
    assert dead_letter(b'{"a":\n  1}').preview() == '{"a": 1}'
    assert dead_letter(b"x" * 100).preview(10) == "x" * 9 + "…"
    assert dead_letter(b"\xff\xfe").preview() == "(2 bytes, not text)"
    assert dead_letter(b"").preview() == "(no value)"


def test_filters_select_by_original_topic_reason_and_time():
    letter = dead_letter(headers=[("dlq.error", b"UpdateProduct for S-1: no such product"),
                                  ("dlq.original.topic", b"inventory.commands")])
    assert Filter(topic="inventory.commands", reason="NO SUCH", since=letter.time)(letter)
    assert not Filter(topic="orders.commands")(letter)
    assert not Filter(reason="discontinued")(letter)
    assert not Filter(since=letter.time + timedelta(seconds=1))(letter)


def test_since_is_a_time_ago_or_an_iso_time():
    assert abs(parse_since("2h") - (datetime.now(UTC) - timedelta(hours=2))) < timedelta(seconds=5)
    assert parse_since("2026-11-25T10:00:00") == datetime(2026, 11, 25, 10, tzinfo=UTC)


def test_a_dead_letter_sent_without_its_value_is_not_redriven_empty():
    left_out = dead_letter(b"", [("dlq.error", b"not JSON; its value of 3000000 bytes was too large for the "
                                               b"dead-letter topic: read it at the original offset")])
    assert left_out.value_left_out
    assert not dead_letter(b"", [("dlq.error", b"empty message value")]).value_left_out
